// kp_backends through its mapping (BPF_F_MMAPABLE): the control plane reads the 262k slots at
// start-up and writes a full sync's 80k backends without a syscall or a staging buffer each.
import koffi from 'koffi';
import { KpError } from '../errors.js';
import { addrToBytes } from '../maps/addr.js';
import { backend as backendCodec, BACKEND_FLAG, LAYOUTS, type Backend } from '../maps/codecs.js';
import type { BpfMap } from '../maps/map.js';
import { BPF_F_MMAPABLE, libcFns, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from './libbpf.js';

const SIZE = LAYOUTS.kp_backend.size;
const [STATE] = LAYOUTS.kp_backend.fields.state;
const [GEN] = LAYOUTS.kp_backend.fields.gen;
const [VIP_ID] = LAYOUTS.kp_backend.fields.vip_id;
const [WEIGHT] = LAYOUTS.kp_backend.fields.weight;
const [ADDR] = LAYOUTS.kp_backend.fields.addr;
const [PORT] = LAYOUTS.kp_backend.fields.port;
const [FLAGS] = LAYOUTS.kp_backend.fields.flags;

export class BackendSlots {
  private mapping?: { ptr: unknown; bytes: number; view: Buffer };

  constructor(private readonly map: BpfMap<number, Backend>) {}

  /** false for maps made without BPF_F_MMAPABLE (the caller uses syscalls then) */
  get mapped(): boolean {
    return (this.map.info.flags & BPF_F_MMAPABLE) !== 0;
  }

  private view(): Buffer {
    if (!this.mapping) {
      const bytes = Math.ceil((this.map.info.maxEntries * SIZE) / 4096) * 4096;
      const ptr = libcFns.mmap(null, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, this.map.fd, 0);
      if (ptr === null || koffi.address(ptr) === MAP_FAILED) throw new KpError('KP_ERR_STATE', `mmap of kp_backends failed (errno ${koffi.errno()})`);
      this.mapping = { ptr, bytes, view: Buffer.from(koffi.view(ptr, bytes)) };
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
   * slot stops matching its old connections before anything else changes), then the body, then the
   * state (a slot becomes active only once it is whole). Each store is seen in order on x86 and
   * arm64 (the stores are to one page a packet reads after a load of a table or connection).
   */
  write(id: number, b: Backend): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.map.info.maxEntries) throw new KpError('KP_ERR_ARG', `backend id ${id} is outside kp_backends`);
    const v = this.view();
    const o = id * SIZE;
    v.writeUInt32LE(b.gen, o + GEN);
    v.writeUInt32LE(b.vipId, o + VIP_ID);
    v.writeUInt16LE(b.weight, o + WEIGHT);
    v.set(addrToBytes(b.addr), o + ADDR);
    v.writeUInt16BE(b.port, o + PORT);
    v[o + FLAGS] = (b.local ? BACKEND_FLAG.local : 0) | (b.terminating ? BACKEND_FLAG.terminating : 0);
    v[o + STATE] = b.state;
  }

  close(): void {
    if (this.mapping) libcFns.munmap(this.mapping.ptr, this.mapping.bytes);
    this.mapping = undefined;
  }
}
