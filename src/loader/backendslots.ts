// kp_backends through its mapping (BPF_F_MMAPABLE): the control plane reads the 262k slots at
// start-up and writes a full sync's 80k backends without a syscall or a staging buffer each.
import { KpError } from '../errors.js';
import { writeAddr } from '../maps/addr.js';
import { backend as backendCodec, BACKEND_FLAG, LAYOUTS, type Backend } from '../maps/codecs.js';
import type { BpfMap } from '../maps/map.js';
import { BPF_F_MMAPABLE } from './libbpf.js';
import { mapShared, unmap, type Mapping } from './mapping.js';

const SIZE = LAYOUTS.kp_backend.size;
const [STATE] = LAYOUTS.kp_backend.fields.state;
const [GEN] = LAYOUTS.kp_backend.fields.gen;
const [VIP_ID] = LAYOUTS.kp_backend.fields.vip_id;
const [WEIGHT] = LAYOUTS.kp_backend.fields.weight;
const [ADDR] = LAYOUTS.kp_backend.fields.addr;
const [PORT] = LAYOUTS.kp_backend.fields.port;
const [FLAGS] = LAYOUTS.kp_backend.fields.flags;

export class BackendSlots {
  private mapping?: Mapping & { view: Buffer };

  constructor(private readonly map: BpfMap<number, Backend>) {}

  /** false for maps made without BPF_F_MMAPABLE (the caller uses syscalls then) */
  get mapped(): boolean {
    return (this.map.info.flags & BPF_F_MMAPABLE) !== 0;
  }

  private view(): Buffer {
    if (!this.mapping) {
      const m = mapShared(this.map.fd, this.map.info.maxEntries * SIZE, 'kp_backends');
      this.mapping = { ...m, view: Buffer.from(m.buffer) };
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
    writeAddr(b.addr, v, o + ADDR);
    v.writeUInt16BE(b.port, o + PORT);
    v[o + FLAGS] = (b.local ? BACKEND_FLAG.local : 0) | (b.terminating ? BACKEND_FLAG.terminating : 0);
    v[o + STATE] = b.state;
  }

  close(): void {
    if (this.mapping) unmap(this.mapping);
    this.mapping = undefined;
  }
}
