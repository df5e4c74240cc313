// Stages of getting an object into the kernel: open → configure (sizes, pins) → load.
// Pins are handled here rather than by libbpf's pin_path so that an incompatible pin is
// reported field by field.
import { existsSync } from 'node:fs';
import { KpError, bpfError } from '../errors.js';
import { mapInfo } from '../sys/info.js';
import { addressOf, BPF_F_RDONLY_PROG, BPF_MAP_TYPE, check, checkPtr, closeFd, lb, OpenOpts, opts, type Ptr } from '../sys/libbpf.js';

/** Verifier logs of a failing program at level 1 fit easily; the kernel keeps the tail if not. */
const LOG_SIZE = 16 * 1024 * 1024;

export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

/** An opened (not yet loaded) object; close() frees it and every fd libbpf holds for it. */
export class BpfObject {
  private obj: bigint;
  // libbpf keeps the pointer until load; this reference keeps the memory alive.
  private readonly logBuf: Buffer;

  private constructor(obj: bigint, logBuf: Buffer) {
    this.obj = obj;
    this.logBuf = logBuf;
  }

  static open(path: string): BpfObject {
    if (!existsSync(path)) throw new KpError('KP_ERR_STATE', `BPF object ${path} not found: run npm run build:bpf`);
    const logBuf = Buffer.alloc(LOG_SIZE);
    const o = opts(OpenOpts, { kernel_log_buf: addressOf(logBuf), kernel_log_size: LOG_SIZE, kernel_log_level: 0 });
    return new BpfObject(checkPtr('bpf_object__open_file', lb.bpf_object__open_file(path, o), path), logBuf);
  }

  /** Internal maps (.rodata, .bss) have dots in their names and are not user-facing. */
  maps(): Array<{ name: string; ptr: bigint }> {
    const out: Array<{ name: string; ptr: bigint }> = [];
    let m: Ptr = null;
    while ((m = lb.bpf_object__next_map(this.obj, m)) !== null) {
      if (!lb.bpf_map__is_internal(m)) out.push({ name: lb.bpf_map__name(m) as string, ptr: m });
    }
    return out;
  }

  map(name: string): bigint {
    const m = lb.bpf_object__find_map_by_name(this.obj, name) as Ptr;
    if (m === null) throw new KpError('KP_ERR_STATE', `map ${name} is not in the BPF object`);
    return m;
  }

  spec(m: bigint): MapSpec {
    return {
      name: lb.bpf_map__name(m),
      type: lb.bpf_map__type(m),
      keySize: lb.bpf_map__key_size(m),
      valueSize: lb.bpf_map__value_size(m),
      maxEntries: lb.bpf_map__max_entries(m),
      flags: lb.bpf_map__map_flags(m),
    };
  }

  setMaxEntries(name: string, n: number): void {
    check('bpf_map__set_max_entries', lb.bpf_map__set_max_entries(this.map(name), n), `${name}=${n}`);
  }

  /** Reuse the map pinned at path after checking it is compatible; false if nothing is pinned there. */
  reusePinned(name: string, path: string): boolean {
    if (!existsSync(path)) return false;
    const m = this.map(name);
    const fd = check('bpf_obj_get', lb.bpf_obj_get(path), path);
    try {
      const diffs = specDiffs(this.spec(m), mapInfo(fd));
      if (diffs.length > 0) {
        throw new KpError(
          'KP_ERR_STATE',
          `pinned map ${path} is incompatible with the object (${diffs.join('; ')}): detach and remove the pins to reload`,
          { details: diffs },
        );
      }
      check('bpf_map__reuse_fd', lb.bpf_map__reuse_fd(m, fd), path);
    } finally {
      closeFd(fd); // reuse_fd keeps its own duplicate
    }
    return true;
  }

  /** After load: pin a map libbpf created. */
  pinMap(name: string, path: string): void {
    check('bpf_obj_pin', lb.bpf_obj_pin(this.mapFd(name), path), path);
  }

  /** Load every map and program; a rejected program raises KP_ERR_VERIFIER with the log. */
  load(): void {
    const r = lb.bpf_object__load(this.obj);
    if (r >= 0) return;
    const end = this.logBuf.indexOf(0);
    const log = this.logBuf.subarray(0, end < 0 ? LOG_SIZE : end).toString().trim();
    if (log.length > 0) {
      const err = new KpError('KP_ERR_VERIFIER', '', { op: 'bpf_object__load', errno: r, log });
      const last = log.split('\n').filter((l) => l.trim() !== '').slice(-2).join(' / ');
      err.message = `the kernel rejected the BPF program (${err.errnoName}): ${last}`;
      throw err;
    }
    throw bpfError('bpf_object__load', r);
  }

  mapFd(name: string): number {
    return check('bpf_map__fd', lb.bpf_map__fd(this.map(name)), name);
  }

  /** Load no program: bpf_object__load then creates the maps alone. */
  loadNoProgram(): void {
    let p: Ptr = null;
    while ((p = lb.bpf_object__next_program(this.obj, p) as Ptr) !== null) check('bpf_program__set_autoload', lb.bpf_program__set_autoload(p, false), 'autoload');
  }

  hasProgram(name: string): boolean {
    return lb.bpf_object__find_program_by_name(this.obj, name) !== null;
  }

  /** A program by name, or the object's first program. */
  progFd(name?: string): number {
    const p = (name ? lb.bpf_object__find_program_by_name(this.obj, name) : lb.bpf_object__next_program(this.obj, null)) as Ptr;
    if (p === null) throw new KpError('KP_ERR_STATE', `program ${name ?? '(any)'} is not in the BPF object`);
    return check('bpf_program__fd', lb.bpf_program__fd(p), name);
  }

  close(): void {
    if (this.obj !== 0n) lb.bpf_object__close(this.obj);
    this.obj = 0n;
  }
}

/** What differs between an object's map definition and a live (pinned) map. */
export function specDiffs(want: MapSpec, have: { type: number; keySize: number; valueSize: number; maxEntries: number; flags: number }): string[] {
  const d: string[] = [];
  const cmp = (what: string, w: number, h: number, fmt = (x: number) => String(x)) => {
    if (w !== h) d.push(`${what}: pinned ${fmt(h)}, object ${fmt(w)}`);
  };
  cmp('type', want.type, have.type);
  cmp('key size', want.keySize, have.keySize);
  cmp('value size', want.valueSize, have.valueSize);
  cmp('max_entries', want.maxEntries, have.maxEntries);
  // The kernel adds BPF_F_RDONLY_PROG to devmaps by itself.
  const implied = want.type === BPF_MAP_TYPE.DEVMAP || want.type === BPF_MAP_TYPE.DEVMAP_HASH ? BPF_F_RDONLY_PROG : 0;
  cmp('flags', want.flags | implied, have.flags | implied, (x) => `0x${x.toString(16)}`);
  return d;
}
