// Maglev table population (Eisenbud et al., NSDI 2016, section 3.4) with weights.
import { KpError } from '../errors.js';
import { murmur3x86_32 } from './murmur3.js';
import { isPrime, KP_MAGLEV_MAX_LEN, KP_MAGLEV_MIN_LEN } from './primes.js';

export { isPrime, nextPrime, KP_MAGLEV_MIN_LEN, KP_MAGLEV_MAX_LEN, KP_MAGLEV_DEFAULT_LEN } from './primes.js';

export interface MaglevBackend {
  /** Value written into the slots (a kp_backends index, never 0). */
  id: number;
  /** Stable identity that seeds the permutation, e.g. "198.18.1.2:8080". */
  key: string;
  /** Relative share of slots, 0..65535 (kp_backend.weight); default 1; 0 takes no slots. */
  weight?: number;
}

/** Seeds of the two independent permutation hashes (ASCII "kpof" and "kpsk"). */
export const MAGLEV_OFFSET_SEED = 0x6b706f66;
export const MAGLEV_SKIP_SEED = 0x6b70736b;
const MAX_WEIGHT = 0xffff;
const MAX_ID = 0xffffffff;

const utf8 = new TextEncoder();

/** A backend's permutation of a table of `size` slots: slot j = (offset + j * skip) % size. */
export function maglevPermutation(key: string, size: number): { offset: number; skip: number } {
  const bytes = utf8.encode(key);
  return {
    offset: murmur3x86_32(bytes, MAGLEV_OFFSET_SEED) % size,
    skip: (murmur3x86_32(bytes, MAGLEV_SKIP_SEED) % (size - 1)) + 1,
  };
}

export function checkTableSize(size: number): void {
  if (!Number.isInteger(size) || size < KP_MAGLEV_MIN_LEN || size > KP_MAGLEV_MAX_LEN) {
    throw new KpError(
      'KP_ERR_ARG',
      `Maglev table size must be an integer in [${KP_MAGLEV_MIN_LEN}, ${KP_MAGLEV_MAX_LEN}], got ${size}`,
    );
  }
  if (!isPrime(size)) {
    throw new KpError('KP_ERR_ARG', `Maglev table size must be a prime number, got ${size}`);
  }
}

export function checkBackends(backends: readonly MaglevBackend[]): void {
  const seen = new Set<string>();
  for (const b of backends) {
    if (!Number.isInteger(b.id) || b.id < 1 || b.id > MAX_ID) {
      throw new KpError('KP_ERR_ARG', `backend ${b.key}: id must be an integer in [1, ${MAX_ID}], got ${b.id}`);
    }
    const w = b.weight ?? 1;
    if (!Number.isInteger(w) || w < 0 || w > MAX_WEIGHT) {
      throw new KpError('KP_ERR_ARG', `backend ${b.key}: weight must be an integer in [0, ${MAX_WEIGHT}], got ${w}`);
    }
    if (seen.has(b.key)) throw new KpError('KP_ERR_ARG', `duplicate backend key ${b.key}`);
    seen.add(b.key);
  }
}

let scratch = new Uint8Array(0);
/** A zeroed "slot taken" map of `size` bytes, reused: a full sync builds ten thousand tables. */
function takenScratch(size: number): Uint8Array {
  if (scratch.length < size) scratch = new Uint8Array(Math.max(size, 2 * scratch.length));
  const t = scratch.subarray(0, size);
  t.fill(0);
  return t;
}

/** The backends that take slots, in the order that fills the table: weight above 0, by key. */
export function liveBackends(backends: readonly MaglevBackend[]): MaglevBackend[] {
  return backends.filter((b) => (b.weight ?? 1) > 0).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Fill a table of `size` (prime) slots with backend ids. Backends take turns in key order;
 * weights follow the usual weighted variant: every round, a backend's credit grows by its
 * weight and it takes a turn each time the credit reaches the largest weight, so equal
 * weights give plain Maglev and slot shares are proportional to weight.
 * The result does not depend on the order of `backends`. No backend (or all weights 0)
 * gives a table of zeros.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number): Uint32Array {
  checkTableSize(size);
  checkBackends(backends);
  const table = new Uint32Array(size);
  const live = liveBackends(backends);
  fillMaglevTable(live.map((b) => b.key), live.map((b) => b.weight ?? 1), size, table, live.map((b) => b.id));
  return table;
}

/**
 * The fill itself, for backends already live and in key order: slot values are `values[i]` for
 * backend i. The helper thread fills tables of positions (i + 1) this way, for ids given later.
 */
export function fillMaglevTable(keys: readonly string[], weightOf: ArrayLike<number>, size: number, table: Uint32Array | Uint16Array, values: ArrayLike<number>): void {
  const n = keys.length;
  if (n === 0) return;
  const ids = new Uint32Array(n);
  const weights = new Uint32Array(n);
  const pos = new Uint32Array(n); // next permutation entry: (offset + j * skip) % size
  const skips = new Uint32Array(n);
  const credit = new Uint32Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const { offset, skip } = maglevPermutation(keys[i], size);
    ids[i] = values[i];
    weights[i] = weightOf[i];
    pos[i] = offset;
    skips[i] = skip;
    maxWeight = Math.max(maxWeight, weights[i]);
  }

  const taken = takenScratch(size);
  let filled = 0;
  if (weights.every((w) => w === maxWeight)) {
    // Equal weights: plain Maglev, every backend takes a turn each round (a quarter faster).
    for (;;) {
      for (let i = 0; i < n; i++) {
        let p = pos[i];
        const skip = skips[i];
        while (taken[p]) {
          p += skip;
          if (p >= size) p -= size;
        }
        taken[p] = 1;
        table[p] = ids[i];
        p += skip;
        pos[i] = p >= size ? p - size : p;
        if (++filled === size) return;
      }
    }
  }
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      credit[i] += weights[i];
      if (credit[i] < maxWeight) continue;
      credit[i] -= maxWeight;
      let p = pos[i];
      const skip = skips[i];
      while (taken[p]) {
        p += skip;
        if (p >= size) p -= size;
      }
      taken[p] = 1;
      table[p] = ids[i];
      filled++;
      p += skip;
      pos[i] = p >= size ? p - size : p;
    }
  }
}
