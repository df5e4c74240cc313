// Counters each CPU keeps in its own slice of one mappable array (bpf/kp_maps.h, kp_vip_stats_v2):
// CPU c's entry for id i is c * slice + i. Read, summed and (many at once) zeroed through a mapping
// made for the call and removed after it: the kernel maps a BPF array's pages at mmap, so a mapping
// kept open would count the whole array, all CPUs' slices, in the daemon's resident memory.
import { KpError } from '../errors.js';
import { BPF_F_MMAPABLE, numPossibleCpus } from '../sys/libbpf.js';
import { mapShared, unmap } from '../sys/mapping.js';
import { u32, type Codec } from './codecs.js';
import { BpfMap } from './map.js';

/** From this many ids, zero() maps the array rather than updating entries. */
export const ZERO_MAPPED_MIN = 1024;

export class CpuCounters<V> {
  private readonly map: BpfMap<number, V>;
  /** the machine's possible CPUs, each with its slice */
  readonly ncpus: number;
  /** entries per CPU (the program's KP_MAX_VIPS or KP_MAX_BACKENDS) */
  readonly slice: number;

  /** Takes ownership of fd. The loader made the array a slice for each possible CPU. */
  constructor(
    fd: number,
    private readonly vc: Codec<V>,
    label: string,
  ) {
    this.map = new BpfMap(fd, u32, vc, label);
    this.ncpus = numPossibleCpus();
    this.slice = this.info.maxEntries / this.ncpus;
    const problems: string[] = [];
    if (!(this.info.flags & BPF_F_MMAPABLE)) problems.push('not mappable');
    if (!Number.isInteger(this.slice)) problems.push(`${this.info.maxEntries} entries are not a slice for each of ${this.ncpus} CPUs`);
    if (vc.size % 8 !== 0) problems.push(`value size ${vc.size} is not whole u64 counters`);
    if (problems.length) {
      this.map.close();
      throw new KpError('KP_ERR_STATE', `map ${label} is not a per-CPU counter array: ${problems.join(', ')}`, { details: problems });
    }
  }

  get info() {
    return this.map.info;
  }

  get fd(): number {
    return this.map.fd;
  }

  private key(id: number, cpu: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.slice) throw new KpError('KP_ERR_ARG', `id ${id} is outside ${this.info.name} (0-${this.slice - 1})`);
    return cpu * this.slice + id;
  }

  /** `read` over the array's bytes, mapped for this call only. */
  private mapped<T>(read: (view: Buffer) => T): T {
    const m = mapShared(this.fd, this.info.maxEntries * this.vc.size, this.info.name);
    try {
      return read(Buffer.from(m.buffer));
    } finally {
      unmap(m);
    }
  }

  /** Each CPU's value of id. */
  lookup(id: number): V[] {
    return this.mapped((v) => Array.from({ length: this.ncpus }, (_, c) => this.vc.decode(v, this.key(id, c) * this.vc.size)));
  }

  /** The CPUs' values of id added up with `add`. */
  sum(id: number, add: (a: V, b: V) => V): V {
    return this.lookup(id).reduce(add);
  }

  /** Each id's u64 fields summed over the CPUs, as Numbers (exact below 2^53). */
  sumCounters(ids: Iterable<number>): Map<number, Float64Array> {
    const size = this.vc.size;
    const fields = size / 8;
    return this.mapped((v) => {
      const out = new Map<number, Float64Array>();
      for (const id of ids) {
        const acc = new Float64Array(fields);
        for (let c = 0; c < this.ncpus; c++) {
          const base = this.key(id, c) * size;
          for (let f = 0; f < fields; f++) acc[f] += v.readUInt32LE(base + 8 * f) + v.readUInt32LE(base + 8 * f + 4) * 2 ** 32;
        }
        out.set(id, acc);
      }
      return out;
    });
  }

  /**
   * The ids' counters zeroed on every CPU (a re-used id starts clean): a few in one batched update,
   * many (a full sync's 90k) through a mapping, which costs the same whatever their number (the
   * kernel took 50 ms to update 180k entries one by one).
   */
  zero(ids: readonly number[]): void {
    if (!ids.length) return;
    if (ids.length >= ZERO_MAPPED_MIN) {
      const size = this.vc.size;
      this.mapped((v) => {
        for (const id of ids) for (let c = 0; c < this.ncpus; c++) v.fill(0, this.key(id, c) * size, (this.key(id, c) + 1) * size);
      });
      return;
    }
    const n = ids.length * this.ncpus;
    const keys = Buffer.alloc(4 * n);
    let k = 0;
    for (const id of ids) for (let c = 0; c < this.ncpus; c++) keys.writeUInt32LE(this.key(id, c), 4 * k++);
    if (!this.map.updateBatchRaw(keys, Buffer.alloc(this.vc.size * n), n)) {
      const zero = this.vc.decode(Buffer.alloc(this.vc.size));
      for (let i = 0; i < n; i++) this.map.update(keys.readUInt32LE(4 * i), zero);
    }
  }

  /** Each id's value on each CPU (`values[c]` for CPU c), through one mapping: an older kpbpf's
   * per-CPU counts carried over. */
  restore(entries: Iterable<readonly [number, readonly V[]]>): void {
    const size = this.vc.size;
    this.mapped((v) => {
      for (const [id, values] of entries) for (let c = 0; c < this.ncpus; c++) this.vc.encode(values[c]).copy(v, this.key(id, c) * size);
    });
  }

  /** id's value on each CPU (one value: the same on all). Tests set counters with it. */
  update(id: number, value: V | V[]): void {
    for (let c = 0; c < this.ncpus; c++) this.map.update(this.key(id, c), Array.isArray(value) ? value[c] : value);
  }

  close(): void {
    this.map.close();
  }
}
