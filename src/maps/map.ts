// Typed access to a BPF map fd: lookup/update/delete, iteration, batches, per-CPU values.
import { KpError, bpfError } from '../errors.js';
import { mapInfo, type MapInfo } from '../sys/info.js';
import {
  BatchOpts,
  BPF_ANY,
  check,
  closeFd,
  ENOENT,
  lb,
  numPossibleCpus,
  opts,
  PERCPU_MAP_TYPES,
} from '../sys/libbpf.js';
import type { Codec } from './codecs.js';

/** Entries per batch syscall for already encoded updates (the kernel copies them in one go). */
const BATCH_CHUNK_RAW = 65536;
/** Entries per bpf_map_lookup_batch call: about 1 MiB of keys and values, within [64, 8192]. */
const batchChunk = (entryBytes: number) => Math.max(64, Math.min(8192, Math.floor((1 << 20) / entryBytes)));
// Errors that mean "this map type has no batch ops": fall back to get_next_key.
const EINVAL = 22;
const ENOTSUPP = 524;
const EOPNOTSUPP = 95;

const round8 = (n: number) => (n + 7) & ~7;

/** Common part: fd ownership, key codec, iteration over keys. `V` is what lookup returns. */
abstract class MapBase<K, V> {
  readonly fd: number;
  readonly info: MapInfo;
  protected readonly kc: Codec<K>;
  /** bytes of one value as the syscall sees it (all CPUs for per-CPU maps) */
  protected abstract readonly rawValueSize: number;
  private batchOk = true;

  protected constructor(fd: number, kc: Codec<K>, valueSize: number, label: string) {
    this.fd = fd;
    try {
      this.info = mapInfo(fd);
    } catch (e) {
      closeFd(fd); // the constructor owns fd even when it fails
      throw e;
    }
    this.kc = kc;
    const diffs: string[] = [];
    if (this.info.keySize !== kc.size) diffs.push(`key size ${this.info.keySize} != codec ${kc.size}`);
    if (this.info.valueSize !== valueSize) diffs.push(`value size ${this.info.valueSize} != codec ${valueSize}`);
    if (diffs.length > 0) {
      closeFd(fd);
      throw new KpError('KP_ERR_STATE', `map ${label || this.info.name} does not match its codec: ${diffs.join(', ')}`, {
        details: diffs,
      });
    }
  }

  protected abstract decodeValue(b: Buffer, off: number): V;

  protected lookupRaw(k: K): Buffer | undefined {
    const v = Buffer.alloc(this.rawValueSize);
    const r = lb.bpf_map_lookup_elem(this.fd, this.kc.encode(k), v);
    if (r === -ENOENT) return undefined;
    check('bpf_map_lookup_elem', r, this.info.name);
    return v;
  }

  lookup(k: K): V | undefined {
    const v = this.lookupRaw(k);
    return v === undefined ? undefined : this.decodeValue(v, 0);
  }

  /** true if the key existed. */
  delete(k: K): boolean {
    const r = lb.bpf_map_delete_elem(this.fd, this.kc.encode(k));
    if (r === -ENOENT) return false;
    check('bpf_map_delete_elem', r, this.info.name);
    return true;
  }

  *keys(): Generator<K> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.kc.size);
      const r = lb.bpf_map_get_next_key(this.fd, prev, next);
      if (r === -ENOENT) return;
      check('bpf_map_get_next_key', r, this.info.name);
      yield this.kc.decode(next);
      prev = next;
    }
  }

  /** All entries; read in batches when the map type supports batches. */
  *entries(): Generator<[K, V]> {
    if (this.batchOk) {
      const all = this.lookupBatch();
      if (all !== undefined) {
        yield* all;
        return;
      }
    }
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  /** How many entries the map holds now (raw batches, nothing decoded). */
  count(): number {
    let n = 0;
    if (this.scanBatch(() => n++)) return n;
    for (const _ of this.keys()) n++; // eslint-disable-line @typescript-eslint/no-unused-vars
    return n;
  }

  /** Every entry through bpf_map_lookup_batch, or undefined when the map type has no batch ops. */
  lookupBatch(): Array<[K, V]> | undefined {
    const out: Array<[K, V]> = [];
    const ok = this.scanBatch((keys, ko, vals, vo) => out.push([this.kc.decode(keys, ko), this.decodeValue(vals, vo)]));
    return ok ? out : undefined;
  }

  /**
   * Visit every entry's raw bytes (key buffer + offset, value buffer + offset) without decoding, for
   * callers that decode only what they need from a large map. false when the map has no batch ops.
   */
  scanBatch(visit: (keys: Buffer, keyOff: number, vals: Buffer, valOff: number) => void): boolean {
    const ks = this.kc.size;
    const vs = this.rawValueSize;
    const chunk = batchChunk(ks + vs);
    const keys = Buffer.alloc(ks * chunk);
    const vals = Buffer.alloc(vs * chunk);
    // The batch token is opaque to user space; a key-sized (at least 8 bytes) buffer holds it.
    const tokA = Buffer.alloc(Math.max(ks, 8));
    const tokB = Buffer.alloc(Math.max(ks, 8));
    let inTok: Buffer | null = null;
    let outTok = tokA;
    for (;;) {
      const count = [chunk];
      const r = lb.bpf_map_lookup_batch(this.fd, inTok, outTok, keys, vals, count, opts(BatchOpts, { elem_flags: 0n, flags: 0n }));
      if (r < 0 && r !== -ENOENT) {
        if (inTok === null && [EINVAL, ENOTSUPP, EOPNOTSUPP].includes(-r)) {
          this.batchOk = false;
          return false;
        }
        throw bpfError('bpf_map_lookup_batch', r, this.info.name);
      }
      for (let i = 0; i < count[0]; i++) visit(keys, i * ks, vals, i * vs);
      if (r === -ENOENT) return true;
      inTok = outTok;
      outTok = outTok === tokA ? tokB : tokA;
    }
  }

  /**
   * Already encoded keys and values (count of each, back to back) in one syscall per chunk; returns
   * false, having written nothing, when the map type has no batch update.
   */
  updateBatchRaw(keys: Buffer, vals: Buffer, count: number, flags: bigint = BPF_ANY): boolean {
    const ks = this.kc.size;
    const vs = this.rawValueSize;
    for (let i = 0; i < count; i += BATCH_CHUNK_RAW) {
      const n = Math.min(BATCH_CHUNK_RAW, count - i);
      const c = [n];
      const r = lb.bpf_map_update_batch(this.fd, keys.subarray(i * ks, (i + n) * ks), vals.subarray(i * vs, (i + n) * vs), c, opts(BatchOpts, { elem_flags: flags, flags: 0n }));
      if (r < 0 && i === 0 && c[0] === 0 && [EINVAL, ENOTSUPP, EOPNOTSUPP].includes(-r)) return false;
      check('bpf_map_update_batch', r, `${this.info.name}, ${c[0]} of ${n} written`);
    }
    return true;
  }

  close(): void {
    closeFd(this.fd);
    (this as { fd: number }).fd = -1;
  }
}

export class BpfMap<K, V> extends MapBase<K, V> {
  protected readonly rawValueSize: number;
  private readonly vc: Codec<V>;

  constructor(fd: number, kc: Codec<K>, vc: Codec<V>, label = '') {
    super(fd, kc, vc.size, label);
    this.vc = vc;
    this.rawValueSize = vc.size;
    if (PERCPU_MAP_TYPES.includes(this.info.type)) {
      this.close();
      throw new KpError('KP_ERR_STATE', `map ${this.info.name} is per-CPU: use PerCpuMap`);
    }
  }

  /** Takes ownership of fd. */
  static fromFd<K, V>(fd: number, kc: Codec<K>, vc: Codec<V>): BpfMap<K, V> {
    return new BpfMap(fd, kc, vc);
  }

  static fromPin<K, V>(path: string, kc: Codec<K>, vc: Codec<V>): BpfMap<K, V> {
    return new BpfMap(check('bpf_obj_get', lb.bpf_obj_get(path), path), kc, vc, path);
  }

  protected decodeValue(b: Buffer, off: number): V {
    return this.vc.decode(b, off);
  }

  update(k: K, v: V, flags: bigint = BPF_ANY): void {
    check('bpf_map_update_elem', lb.bpf_map_update_elem(this.fd, this.kc.encode(k), this.vc.encode(v), flags), this.info.name);
  }

  /** Many entries in few syscalls (up to BATCH_CHUNK_RAW each); single updates where the map has no batch. */
  updateBatch(entries: ReadonlyArray<readonly [K, V]>, flags: bigint = BPF_ANY): void {
    if (!entries.length) return;
    const ks = this.kc.size;
    const vs = this.vc.size;
    const keys = Buffer.alloc(ks * entries.length);
    const vals = Buffer.alloc(vs * entries.length);
    const kc = this.kc;
    const vc = this.vc;
    entries.forEach(([k, v], i) => {
      if (kc.encodeInto) kc.encodeInto(k, keys, i * ks);
      else kc.encode(k).copy(keys, i * ks);
      if (vc.encodeInto) vc.encodeInto(v, vals, i * vs);
      else vc.encode(v).copy(vals, i * vs);
    });
    // One syscall for up to BATCH_CHUNK_RAW entries: a map of maps waits for an RCU grace period
    // after each update syscall, so fewer calls are much faster.
    if (!this.updateBatchRaw(keys, vals, entries.length, flags)) for (const [k, v] of entries) this.update(k, v, flags);
  }
}

/** A per-CPU map: one value per possible CPU, each slot rounded up to 8 bytes. */
export class PerCpuMap<K, V> extends MapBase<K, V[]> {
  protected readonly rawValueSize: number;
  private readonly vc: Codec<V>;
  readonly ncpus: number;
  private readonly slot: number;

  constructor(fd: number, kc: Codec<K>, vc: Codec<V>, label = '') {
    super(fd, kc, vc.size, label);
    if (!PERCPU_MAP_TYPES.includes(this.info.type)) {
      this.close();
      throw new KpError('KP_ERR_STATE', `map ${this.info.name} is not per-CPU: use BpfMap`);
    }
    this.vc = vc;
    this.ncpus = numPossibleCpus();
    this.slot = round8(vc.size);
    this.rawValueSize = this.slot * this.ncpus;
  }

  static fromFd<K, V>(fd: number, kc: Codec<K>, vc: Codec<V>): PerCpuMap<K, V> {
    return new PerCpuMap(fd, kc, vc);
  }

  static fromPin<K, V>(path: string, kc: Codec<K>, vc: Codec<V>): PerCpuMap<K, V> {
    return new PerCpuMap(check('bpf_obj_get', lb.bpf_obj_get(path), path), kc, vc, path);
  }

  protected decodeValue(b: Buffer, off: number): V[] {
    return Array.from({ length: this.ncpus }, (_, c) => this.vc.decode(b, off + c * this.slot));
  }

  /** One value for every CPU (an array of length ncpus), or the same value on all CPUs. */
  update(k: K, v: V | V[], flags: bigint = BPF_ANY): void {
    const buf = Buffer.alloc(this.rawValueSize);
    for (let c = 0; c < this.ncpus; c++) this.vc.encode(Array.isArray(v) ? v[c] : v).copy(buf, c * this.slot);
    check('bpf_map_update_elem', lb.bpf_map_update_elem(this.fd, this.kc.encode(k), buf, flags), this.info.name);
  }

  /** The same value on every CPU for each key, in one syscall per chunk where the map allows it. */
  updateBatch(entries: ReadonlyArray<readonly [K, V]>, flags: bigint = BPF_ANY): void {
    if (!entries.length) return;
    const ks = this.kc.size;
    const keys = Buffer.alloc(ks * entries.length);
    const vals = Buffer.alloc(this.rawValueSize * entries.length);
    const kc = this.kc;
    // Values that repeat (a batch of zeroed counters) are encoded once.
    let lastV: V | undefined;
    let enc: Buffer | undefined;
    entries.forEach(([k, v], i) => {
      if (kc.encodeInto) kc.encodeInto(k, keys, i * ks);
      else kc.encode(k).copy(keys, i * ks);
      if (enc === undefined || v !== lastV) [enc, lastV] = [this.vc.encode(v), v];
      for (let c = 0; c < this.ncpus; c++) enc.copy(vals, i * this.rawValueSize + c * this.slot);
    });
    if (!this.updateBatchRaw(keys, vals, entries.length, flags)) for (const [k, v] of entries) this.update(k, v, flags);
  }

  /**
   * For values that are all u64 counters: each wanted key's fields (by 8-byte index) summed over
   * the CPUs as Numbers, in one batched walk of the map (a syscall per 1 MiB instead of one per
   * key; 90k counters of 10k VIPs took 0.5 s one by one, and BigInt sums most of the rest).
   * Undefined when the map type has no batch ops.
   */
  sumCountersBatch(want: (k: number) => boolean): Map<number, Float64Array> | undefined {
    const out = new Map<number, Float64Array>();
    const fields = this.vc.size / 8;
    const ok = this.scanBatch((keys, ko, vals, vo) => {
      const k = keys.readUInt32LE(ko);
      if (!want(k)) return;
      const acc = new Float64Array(fields);
      for (let c = 0; c < this.ncpus; c++) {
        const base = vo + c * this.slot;
        for (let f = 0; f < fields; f++) acc[f] += vals.readUInt32LE(base + 8 * f) + vals.readUInt32LE(base + 8 * f + 4) * 2 ** 32;
      }
      out.set(k, acc);
    });
    return ok ? out : undefined;
  }

  /** Sum over CPUs with `add`, or undefined if the key is absent. */
  sum(k: K, add: (a: V, b: V) => V): V | undefined {
    const vals = this.lookup(k);
    return vals === undefined ? undefined : vals.reduce(add);
  }
}

/** Adders for sum(): 64-bit counters and counter records. */
export const addU64 = (a: bigint, b: bigint): bigint => a + b;
export function addRecords<T extends object>(a: T, b: T): T {
  const out = { ...a } as Record<string, bigint>;
  for (const [k, x] of Object.entries(b)) out[k] = (out[k] ?? 0n) + (x as bigint);
  return out as T;
}
