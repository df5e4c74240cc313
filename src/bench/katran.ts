// Katran's XDP balancer as a benchmark anchor: an object the user built from Katran's public
// repository (never shipped here), loaded with libbpf and configured through its maps as its own
// control plane would for one IPv4 UDP VIP with one real: vip_map, a full consistent-hash ring,
// reals, the default router's MAC, and a per-CPU LRU of the size asked for. Its paths are verified
// by its own counters (stats[MAX_VIPS + LRU_CNTRS]: v1 packets through the LRU, v2 misses).
import { BpfObject } from '../loader/object.js';
import { BPF_MAP_TYPE, check, closeFd, dupFd, lb, MapCreateOpts, numPossibleCpus, opts } from '../sys/libbpf.js';
import { BpfMap, PerCpuMap, addRecords } from '../maps/map.js';
import type { Codec } from '../maps/codecs.js';
import { ipv4ToInt } from './rulesets.js';

// Katran's balancer_consts.h defaults (its build without -D overrides).
const RING_SIZE = 65537;
const MAX_VIPS = 512;
const LRU_CNTRS = 0;
const MAC_ADDR_POS = 0;
// balancer_structs.h sizes: flow_key 40 (16 + 16 + 4 + 1, padded), real_pos_lru 16,
// vip_definition 20, vip_meta 8, real_definition 20, ctl_value 8, lb_stats 16.
const FLOW_KEY = 40;
const REAL_POS_LRU = 16;

const raw = (size: number): Codec<Buffer> => ({ size, encode: (b) => b, decode: (b, o = 0) => Buffer.from(b.subarray(o, o + size)) });
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};
const be32 = (addr: string): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipv4ToInt(addr) >>> 0);
  return b;
};
const lbStats: Codec<{ v1: bigint; v2: bigint }> = {
  size: 16,
  encode: (v) => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(v.v1, 0);
    b.writeBigUInt64LE(v.v2, 8);
    return b;
  },
  decode: (b, o = 0) => ({ v1: b.readBigUInt64LE(o), v2: b.readBigUInt64LE(o + 8) }),
};

/** The flow_key Katran builds for an IPv4 packet: addresses and ports as they are on the wire. */
export function katranFlowKey(src: string, dst: string, sport: number, dport: number, proto: number): Buffer {
  const k = Buffer.alloc(FLOW_KEY);
  be32(src).copy(k, 0);
  be32(dst).copy(k, 16);
  k.writeUInt16BE(sport, 32);
  k.writeUInt16BE(dport, 34);
  k[36] = proto;
  return k;
}

export class KatranAnchor {
  private constructor(
    readonly progFd: number,
    private readonly lru: BpfMap<Buffer, Buffer>,
    private readonly stats: PerCpuMap<number, { v1: bigint; v2: bigint }>,
    private readonly fds: number[],
  ) {}

  /** Loads `path` and configures VIP vip:port/UDP -> real, with one LRU of `lruSize` flows that
   * every CPU uses (Katran's control plane makes one per CPU; the benchmark runs on one). */
  static open(path: string, o: { vip: string; port: number; real: string; gatewayMac: string; lruSize: number }): KatranAnchor {
    const obj = BpfObject.open(path);
    const fds: number[] = [];
    try {
      obj.load();
      const map = (name: string, ks: number, vs: number) => {
        const fd = dupFd(obj.mapFd(name));
        fds.push(fd);
        return new BpfMap(fd, raw(ks), raw(vs), name);
      };
      const vipDef = Buffer.alloc(20);
      be32(o.vip).copy(vipDef, 0);
      vipDef.writeUInt16BE(o.port, 16);
      vipDef[18] = 17;
      map('vip_map', 20, 8).update(vipDef, Buffer.concat([u32(0), u32(0)])); // flags 0, vip_num 0
      const real = Buffer.alloc(20);
      be32(o.real).copy(real, 0);
      map('reals', 4, 20).update(u32(1), real); // real ids start at 1
      const ring = map('ch_rings', 4, 4);
      const keys = Buffer.alloc(4 * RING_SIZE);
      const vals = Buffer.alloc(4 * RING_SIZE);
      for (let i = 0; i < RING_SIZE; i++) {
        keys.writeUInt32LE(i, 4 * i);
        vals.writeUInt32LE(1, 4 * i);
      }
      ring.updateBatchRaw(keys, vals, RING_SIZE);
      const mac = Buffer.alloc(8);
      Buffer.from(o.gatewayMac.split(':').map((x) => parseInt(x, 16))).copy(mac);
      map('ctl_array', 4, 8).update(u32(MAC_ADDR_POS), mac);
      // The per-CPU LRU Katran's control plane creates (the object's fallback holds 1000 flows).
      const lruFd = check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.LRU_HASH, 'katran_lru', FLOW_KEY, REAL_POS_LRU, o.lruSize, opts(MapCreateOpts, {})));
      fds.push(lruFd);
      const mapping = map('lru_mapping', 4, 4);
      for (let cpu = 0; cpu < numPossibleCpus(); cpu++) mapping.update(u32(cpu), u32(lruFd));
      const lru = new BpfMap(dupFd(lruFd), raw(FLOW_KEY), raw(REAL_POS_LRU), 'katran_lru');
      const statsFd = dupFd(obj.mapFd('stats'));
      fds.push(statsFd);
      const progFd = dupFd(obj.progFd());
      return new KatranAnchor(progFd, lru, new PerCpuMap(dupFd(statsFd), { size: 4, encode: u32, decode: (b, off = 0) => b.readUInt32LE(off) }, lbStats, 'stats'), fds);
    } catch (e) {
      fds.forEach(closeFd);
      throw e;
    } finally {
      obj.close();
    }
  }

  /** Flows already in the LRU (as Katran writes them: real position 1, atime now for UDP). */
  preload(flows: Buffer[]): void {
    const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, Katran's bpf_ktime_get_ns
    const v = Buffer.alloc(REAL_POS_LRU);
    v.writeUInt32LE(1, 0);
    v.writeBigUInt64LE(now, 8);
    const vals = Buffer.alloc(REAL_POS_LRU * flows.length);
    for (let i = 0; i < flows.length; i++) v.copy(vals, i * REAL_POS_LRU);
    this.lru.updateBatchRaw(Buffer.concat(flows), vals, flows.length);
  }

  /** Packets through the LRU and LRU misses, summed over CPUs. */
  lruCounters(): { packets: bigint; misses: bigint } {
    const s = this.stats.sum(MAX_VIPS + LRU_CNTRS, addRecords) ?? { v1: 0n, v2: 0n };
    return { packets: s.v1, misses: s.v2 };
  }

  close(): void {
    this.lru.close();
    this.stats.close();
    closeFd(this.progFd);
    this.fds.forEach(closeFd);
  }
}
