// kp_backends through its mapping (BPF_F_MMAPABLE): the control plane reads the 262k slots at
// start-up and writes a full sync's 80k backends without a syscall or a staging buffer each.
import { endianness } from 'node:os';
import { KpError } from '../errors.js';
import { writeAddr } from '../maps/addr.js';
import { backend as backendCodec, BACKEND_FLAG, LAYOUTS, type Backend } from '../maps/codecs.js';
import type { BpfMap } from '../maps/map.js';
import { BPF_F_MMAPABLE } from '../sys/libbpf.js';
import { mapShared, unmap, type Mapping } from '../sys/mapping.js';

const SIZE = LAYOUTS.kp_backend.size;
const [STATE] = LAYOUTS.kp_backend.fields.state;
const [GEN] = LAYOUTS.kp_backend.fields.gen;
const [VIP_ID] = LAYOUTS.kp_backend.fields.vip_id;
const [WEIGHT] = LAYOUTS.kp_backend.fields.weight;
const [ADDR] = LAYOUTS.kp_backend.fields.addr;
const [PORT] = LAYOUTS.kp_backend.fields.port;
const [FLAGS] = LAYOUTS.kp_backend.fields.flags;

/** The slot's 16 address bytes as kp_backend holds them, built here and stored four bytes at a time. */
const addrScratch = Buffer.alloc(16);
// The typed arrays below are in the host's byte order, taken to be little-endian (x86, arm64: the
// build's targets).
if (endianness() !== 'LE') throw new KpError('KP_ERR_STATE', 'kp_backends is written for a little-endian host');

export class BackendSlots {
  private mapping?: Mapping & { view: Buffer; u8: Uint8Array; u16: Uint16Array; u32: Uint32Array };

  constructor(private readonly map: BpfMap<number, Backend>) {}

  /** false for maps made without BPF_F_MMAPABLE (the caller uses syscalls then) */
  get mapped(): boolean {
    return (this.map.info.flags & BPF_F_MMAPABLE) !== 0;
  }

  private view(): Buffer {
    if (!this.mapping) {
      const m = mapShared(this.map.fd, this.map.info.maxEntries * SIZE, 'kp_backends');
      this.mapping = { ...m, view: Buffer.from(m.buffer), u8: new Uint8Array(m.buffer), u16: new Uint16Array(m.buffer), u32: new Uint32Array(m.buffer) };
    }
    return this.mapping.view;
  }

  /** Visit every slot: used ones decoded, free ones by generation only (most of them are free). */
  scan(visit: (id: number, b: Backend | undefined, gen: number) => void, freeState: number): void {
    const v = this.view();
    const n = this.map.info.maxEntries;
    for (let id = 0, o = 0; id < n; id++, o += SIZE) {
      if (v[o + STATE] === freeState) visit(id, undefined, v.readUInt32LE(o + GEN));
      else visit(id, backendCodec.decode(v, o), 0);
    }
  }

  /**
   * Write a slot in the order a concurrent reader needs: the generation first (a flushed or re-used
   * slot stops matching its old connections before its address changes), then the body, then the
   * state (a slot becomes active only once it is whole). x86 shows plain stores to other CPUs in
   * program order; arm64 does not, so every store is an Atomics.store (a store-release there, and
   * store-releases are seen in program order). A new slot is also reached only through a table
   * published after it with a store-release of its own.
   */
  write(id: number, b: Backend): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.map.info.maxEntries) throw new KpError('KP_ERR_ARG', `backend id ${id} is outside kp_backends`);
    this.view();
    const { u8, u16, u32 } = this.mapping!;
    const o = id * SIZE;
    Atomics.store(u32, (o + GEN) >> 2, b.gen);
    Atomics.store(u32, (o + VIP_ID) >> 2, b.vipId);
    Atomics.store(u16, (o + WEIGHT) >> 1, b.weight);
    writeAddr(b.addr, addrScratch, 0);
    for (let i = 0; i < 16; i += 4) Atomics.store(u32, (o + ADDR + i) >> 2, addrScratch.readUInt32LE(i));
    Atomics.store(u16, (o + PORT) >> 1, ((b.port & 0xff) << 8) | (b.port >> 8)); // network order in a little-endian u16
    Atomics.store(u8, o + FLAGS, (b.local ? BACKEND_FLAG.local : 0) | (b.terminating ? BACKEND_FLAG.terminating : 0));
    Atomics.store(u8, o + STATE, b.state);
  }

  close(): void {
    if (this.mapping) unmap(this.mapping);
    this.mapping = undefined;
  }
}
