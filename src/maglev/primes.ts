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
