// Maglev table sizes: primes within the bounds of bpf/kp_shared.h.

export const KP_MAGLEV_MIN_LEN = 7;
export const KP_MAGLEV_MAX_LEN = 131071;
export const KP_MAGLEV_DEFAULT_LEN = 1021;

/** Trial division; table sizes are small enough (<= 2^17) for this to be instant. */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) {
    if (n % d === 0) return false;
  }
  return true;
}

/** The smallest prime >= n. */
export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

/**
 * Slots per backend of a table whose size is left out ("new_len auto"): the Maglev benchmark shows
 * balance and disruption degrading below 100 (as the Maglev paper's M >= 100 N).
 */
export const AUTO_SLOTS_PER_BACKEND = 100;

/** The size "new_len auto" picks for n backends: the smallest prime >= 100 n, within the bounds. */
export function autoTableLen(n: number): number {
  return Math.min(KP_MAGLEV_MAX_LEN, nextPrime(Math.max(KP_MAGLEV_MIN_LEN, AUTO_SLOTS_PER_BACKEND * Math.max(1, n))));
}

/**
 * Whether an automatic table of `size` still suits n backends: at least the size n asks for, and not
 * more than 4n would ask for. The gap keeps a table from being resized back and forth (which moves
 * new connections' slots) while a deployment scales by a backend or two.
 */
export function autoTableFits(size: number, n: number): boolean {
  return n === 0 || (size >= autoTableLen(n) && size <= autoTableLen(4 * n));
}
