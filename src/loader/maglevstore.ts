// The shared Maglev store (bpf/kp_maps.h): every VIP's table is a run of words in one mappable
// array, published by one atomic 8-byte store of the VIP's kp_maglev_ref entry. Publishing costs
// a copy into memory; no map is created and no syscall made per table.
import { KpError } from '../errors.js';
import type { BpfMap } from '../maps/map.js';
import { BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_MAP_TYPE, check, closeFd, lb, MapCreateOpts, opts } from '../sys/libbpf.js';
import { mapInfo } from '../sys/info.js';
import { mapShared, unmap, type Mapping } from '../sys/mapping.js';
import { RunAllocator } from './runs.js';
import type { MaglevTable } from '../maglev/prefetch.js';

/** KP_MAGLEV_CHUNK of bpf/kp_shared.h: words per entry of the store (the kernel checks the
 * value size against the program's template when the store is swapped in). */
export const MAGLEV_CHUNK = 16;
/** The smallest store, in words, and the largest (the ref's first word is a u32; 1 GiB). */
const MIN_WORDS = 1 << 16;
const MAX_WORDS = 1 << 28;
/**
 * How long a replaced table stays untouched before its words are reused: a packet that read the
 * old ref finishes within microseconds (XDP runs under RCU); a second is far beyond it.
 */
export const REUSE_AFTER_MS = 1000;

interface Store {
  fd: number;
  map: Mapping;
  words: Uint32Array;
}

export class MaglevStore {
  private refMap?: Mapping;
  private refWords!: Uint32Array; // ref i: first at word 2i, length at 2i+1
  private refs!: BigUint64Array; // the same memory, for the atomic 8-byte store
  /** kp_maglev_ref key offset of the local-only tables (KP_MAGLEV_LOCAL = the program's KP_MAX_VIPS) */
  private localBase = 0;
  private store?: Store | null; // null: the pins have none yet
  private runs?: RunAllocator;

  constructor(
    private readonly refFd: number,
    private readonly outer: BpfMap<number, number>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  private key(vipId: number, local?: boolean): number {
    this.openRefs();
    if (!Number.isInteger(vipId) || vipId < 1 || vipId >= this.localBase) throw new KpError('KP_ERR_ARG', `VIP id ${vipId} is outside 1..${this.localBase - 1}`);
    return local ? vipId + this.localBase : vipId;
  }

  private openRefs(): void {
    if (this.refMap) return;
    const entries = mapInfo(this.refFd).maxEntries;
    this.refMap = mapShared(this.refFd, entries * 8, 'kp_maglev_ref');
    const ab = this.refMap.buffer;
    this.refWords = new Uint32Array(ab);
    this.refs = new BigUint64Array(ab);
    this.localBase = entries / 2;
  }

  /** The store the program reads (kp_maglev_store[0]), mapped; undefined when there is none yet. */
  private current(): Store | undefined {
    if (this.store === undefined) {
      this.store = null;
      const id = this.outer.lookup(0);
      if (id !== undefined) {
        const fd = check('bpf_map_get_fd_by_id', lb.bpf_map_get_fd_by_id(id), 'the Maglev store');
        try {
          const chunks = mapInfo(fd).maxEntries;
          const map = mapShared(fd, chunks * MAGLEV_CHUNK * 4, 'the Maglev store');
          this.store = { fd, map, words: new Uint32Array(map.buffer) };
        } catch (e) {
          closeFd(fd);
          throw e;
        }
      }
    }
    return this.store ?? undefined;
  }

  /** Which words are in use, from the refs (the pins outlive any one process). */
  private allocator(): RunAllocator {
    if (this.runs) return this.runs;
    this.openRefs();
    const runs = new RunAllocator(this.current()?.words.length ?? 0, REUSE_AFTER_MS);
    const used: Array<[number, number]> = [];
    for (let i = 0; i < this.refWords.length; i += 2) if (this.refWords[i + 1]) used.push([this.refWords[i], this.refWords[i + 1]]);
    runs.markUsed(used);
    return (this.runs = runs);
  }

  /** A larger store with the same words, swapped in whole; the old one is freed by the kernel. */
  private grow(minWords: number): void {
    const old = this.current();
    // A quarter of headroom (a republished table needs new words while its old ones wait), in
    // whole 64k-word steps; at least half again the old size, so growing stays rare.
    const want = Math.max(MIN_WORDS, minWords * 1.25, (old?.words.length ?? 0) * 1.5);
    const words = Math.ceil(want / MIN_WORDS) * MIN_WORDS;
    if (words > MAX_WORDS) throw new KpError('KP_ERR_STATE', `the Maglev tables need ${minWords} slots, more than the store's ${MAX_WORDS}`);
    const what = `the Maglev store (${words} slots)`;
    const fd = check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.ARRAY, 'kp_maglev_slots', 4, MAGLEV_CHUNK * 4, words / MAGLEV_CHUNK, opts(MapCreateOpts, { map_flags: BPF_F_INNER_MAP | BPF_F_MMAPABLE })), what);
    let map: Mapping | undefined;
    try {
      map = mapShared(fd, words * 4, what);
      const next = new Uint32Array(map.buffer);
      if (old) next.set(old.words);
      this.outer.update(0, fd);
      if (old) {
        unmap(old.map);
        closeFd(old.fd);
      }
      this.store = { fd, map, words: next };
      this.allocator().extend(words);
    } catch (e) {
      if (map) unmap(map);
      closeFd(fd);
      throw e;
    }
  }

  /**
   * Publish tables: each is copied into free words, then its ref is switched with one store, so a
   * packet reads the old table or the new one whole. The replaced words are reused only after
   * REUSE_AFTER_MS.
   */
  set(tables: ReadonlyArray<readonly [number, MaglevTable]>, local?: boolean): void {
    const keys = tables.map(([vipId, slots]) => {
      if (slots.length === 0) throw new KpError('KP_ERR_ARG', `Maglev table for VIP ${vipId} is empty`);
      return this.key(vipId, local);
    });
    const runs = this.allocator();
    const need = tables.reduce((n, [, s]) => n + s.length, 0);
    runs.reclaim(this.now());
    if (runs.freeWords() < need) this.grow(runs.capacity + need);
    const firsts = tables.map(([, slots]) => {
      let at = runs.alloc(slots.length);
      if (at < 0) {
        this.grow(runs.capacity + slots.length); // fragmented: room at the end
        at = runs.alloc(slots.length);
      }
      return at;
    });
    const words = this.current()!.words;
    const t = this.now();
    tables.forEach(([, slots], i) => {
      if (slots instanceof Uint32Array) words.set(slots, firsts[i]);
      else slots.writeTo(words, firsts[i]);
      this.replace(keys[i], firsts[i], slots.length, t);
    });
  }

  private replace(key: number, first: number, len: number, t: number): void {
    // The allocator is built from the refs: before this one changes, or its old run would be both
    // free and quarantined (a restarted process whose first operation is a clear).
    const runs = this.allocator();
    const oldFirst = this.refWords[2 * key];
    const oldLen = this.refWords[2 * key + 1];
    Atomics.store(this.refs, key, (BigInt(len) << 32n) | BigInt(first));
    if (oldLen) runs.release(oldFirst, oldLen, t);
  }

  clear(vipId: number, local?: boolean): void {
    const key = this.key(vipId, local);
    if (this.refWords[2 * key + 1]) this.replace(key, 0, 0, this.now());
  }

  has(vipId: number, local?: boolean): boolean {
    const key = this.key(vipId, local); // maps the refs first
    return this.refWords[2 * key + 1] !== 0;
  }

  get(vipId: number, local?: boolean): Uint32Array | undefined {
    const key = this.key(vipId, local);
    const len = this.refWords[2 * key + 1];
    if (!len) return undefined;
    const first = this.refWords[2 * key];
    return this.current()!.words.slice(first, first + len);
  }

  close(): void {
    if (this.store) {
      unmap(this.store.map);
      closeFd(this.store.fd);
    }
    if (this.refMap) unmap(this.refMap);
    this.store = undefined;
    this.refMap = undefined;
    this.runs = undefined;
  }
}
