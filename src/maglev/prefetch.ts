// Tables built ahead of need. A full sync knows every VIP's backends as soon as the config is
// parsed, long before the backend ids that fill the tables are assigned, and the ids do not change
// a table's shape: the helper thread fills tables of positions (backend i of the key order: i + 1)
// while the caller writes the maps, and the caller maps positions to ids when it publishes. Both
// threads claim tables from one counter, so neither waits on the other while work is left.
import { fillMaglevTable, liveBackends, type MaglevBackend } from './table.js';

/** What both threads see: the jobs in flat arrays, the tables and the counters. */
export interface PrefetchShared {
  /** live backends' keys of every job, in key order, job after job */
  keys: string[];
  weights: Uint32Array;
  /** job j's backends are keys[keyStart[j] .. keyStart[j + 1]) */
  keyStart: Uint32Array;
  sizes: Uint32Array;
  /** job j's table is table[slotStart[j] .. + sizes[j]) of the Uint16Array over `tables` */
  slotStart: Float64Array;
  tables: SharedArrayBuffer;
  /** Int32Array [next job to claim, jobs done] */
  counters: SharedArrayBuffer;
}

/** Positions are 16 bits: a job with more backends is not prefetched. */
export const PREFETCH_MAX_BACKENDS = 0xffff;

let onePlus = new Uint32Array(0);
function positions(n: number): Uint32Array {
  if (onePlus.length < n) onePlus = Uint32Array.from({ length: Math.max(n, 2 * onePlus.length) }, (_, i) => i + 1);
  return onePlus;
}

/** Claim and fill tables until none is left; returns how many this thread filled. */
export function fillPrefetched(s: PrefetchShared): number {
  const counters = new Int32Array(s.counters);
  const slots = new Uint16Array(s.tables);
  const total = s.sizes.length;
  let mine = 0;
  for (;;) {
    const j = Atomics.add(counters, 0, 1);
    if (j >= total) break;
    const from = s.keyStart[j];
    const to = s.keyStart[j + 1];
    const size = s.sizes[j];
    fillMaglevTable(s.keys.slice(from, to), s.weights.subarray(from, to), size, slots.subarray(s.slotStart[j], s.slotStart[j] + size), positions(to - from));
    Atomics.add(counters, 1, 1);
    Atomics.notify(counters, 1);
    mine++;
  }
  return mine;
}

export interface Prefetch {
  shared: PrefetchShared;
  /** the caller's tag of a job (e.g. its VIP) -> job */
  byTag: Map<string, number>;
}

/** A job to build ahead: its tag names the table it should be (the caller's choice, e.g. its VIP). */
export interface PrefetchJob {
  tag: string;
  backends: readonly MaglevBackend[];
  size: number;
}

/** The shared arrays of `jobs` (valid sizes; their ids are not used). */
export function makePrefetch(jobs: readonly PrefetchJob[]): Prefetch {
  const byTag = new Map<string, number>();
  const keys: string[] = [];
  const weights: number[] = [];
  const keyStart: number[] = [0];
  const sizes: number[] = [];
  const slotStart: number[] = [];
  let slots = 0;
  for (const j of jobs) {
    const live = liveBackends(j.backends);
    if (!live.length || live.length > PREFETCH_MAX_BACKENDS || byTag.has(j.tag)) continue;
    byTag.set(j.tag, sizes.length);
    for (const b of live) {
      keys.push(b.key);
      weights.push(b.weight ?? 1);
    }
    keyStart.push(keys.length);
    sizes.push(j.size);
    slotStart.push(slots);
    slots += j.size;
  }
  return {
    byTag,
    shared: {
      keys,
      weights: Uint32Array.from(weights),
      keyStart: Uint32Array.from(keyStart),
      sizes: Uint32Array.from(sizes),
      slotStart: Float64Array.from(slotStart),
      tables: new SharedArrayBuffer(Math.max(2, 2 * slots)),
      counters: new SharedArrayBuffer(8),
    },
  };
}

/** Whether job j was built for exactly these live backends (in key order) and size. */
export function prefetchedFor(p: Prefetch, j: number, live: readonly MaglevBackend[], size: number): boolean {
  const s = p.shared;
  const from = s.keyStart[j];
  if (s.sizes[j] !== size || s.keyStart[j + 1] - from !== live.length) return false;
  for (let i = 0; i < live.length; i++) {
    if (s.keys[from + i] !== live[i].key || s.weights[from + i] !== (live[i].weight ?? 1)) return false;
  }
  return true;
}

/** Stop handing out tables: a thread still filling one finishes it, then stops. */
export function cancelPrefetch(p: Prefetch): void {
  Atomics.store(new Int32Array(p.shared.counters), 0, p.shared.sizes.length);
}

/**
 * Fill what is left here, then wait for the tables the helper is filling (one at a time); false if
 * none of them is finished for `stallMs` (a dead helper: its tables are then not used).
 */
export function completePrefetch(p: Prefetch, stallMs: number): boolean {
  fillPrefetched(p.shared);
  const counters = new Int32Array(p.shared.counters);
  const total = p.shared.sizes.length;
  let until = performance.now() + stallMs;
  let seen = Atomics.load(counters, 1);
  for (;;) {
    const done = Atomics.load(counters, 1);
    if (done >= total) return true;
    if (done !== seen) {
      seen = done;
      until = performance.now() + stallMs; // progress: the helper is alive
    }
    const left = until - performance.now();
    if (left <= 0) return false;
    Atomics.wait(counters, 1, done, left);
  }
}

/**
 * A prefetched table: positions, and the ids they stand for. The store copies it into its words
 * with the ids put in (one pass; no table of ids is made in between).
 */
export class MappedTable {
  constructor(
    private readonly positions: Uint16Array,
    private readonly ids: Uint32Array,
  ) {}

  get length(): number {
    return this.positions.length;
  }

  writeTo(out: Uint32Array, at: number): void {
    const p = this.positions;
    const ids = this.ids;
    for (let i = 0; i < p.length; i++) out[at + i] = ids[p[i]];
  }

  toArray(): Uint32Array {
    const t = new Uint32Array(this.length);
    this.writeTo(t, 0);
    return t;
  }
}

/** A Maglev table as built here, or as prefetched. */
export type MaglevTable = Uint32Array | MappedTable;

/** Job j's table for the ids of `live` (the same backends in key order). */
export function prefetchedTable(p: Prefetch, j: number, live: readonly MaglevBackend[]): MappedTable {
  const ids = new Uint32Array(live.length + 1);
  for (let i = 0; i < live.length; i++) ids[i + 1] = live[i].id;
  return new MappedTable(new Uint16Array(p.shared.tables, 2 * p.shared.slotStart[j], p.shared.sizes[j]), ids);
}
