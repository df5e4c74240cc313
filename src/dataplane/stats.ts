// Counters and flows read back from the per-CPU maps, summed over CPUs.
import type { Dataplane } from '../loader/index.js';
import { addRecords, addU64 } from '../maps/map.js';
import type { FlowView, StatsView, VipView } from './types.js';
import { zeroVipStats } from './vips.js';

/** enum kp_stat in bpf/kp_shared.h, by index. */
export const KP_STAT_NAMES = [
  'pass_not_ip',
  'pass_not_l4',
  'pass_no_match',
  'pass_fragment',
  'drop_malformed',
  'drop_no_backend',
  'tx_redirect',
  'tx_pass',
  'pass_ip_options',
  'dnat',
  'snat',
  'drop_ttl',
] as const;

const num = (x: bigint) => Number(x);

export function readStats(dp: Dataplane, vips: VipView[]): StatsView {
  const global: Record<string, number> = {};
  KP_STAT_NAMES.forEach((name, i) => (global[name] = num(dp.maps.stats.sum(i, addU64) ?? 0n)));
  return {
    global,
    vips: vips.map((v) => {
      const c = dp.maps.vipStats.sum(v.id, addRecords) ?? zeroVipStats();
      return {
        id: v.id,
        prefix: v.prefix,
        protocol: v.protocol,
        port: v.port,
        targetPort: v.targetPort,
        newLen: v.newLen,
        counters: {
          existingPkts: num(c.existingPkts),
          firstPkts: num(c.firstPkts),
          untrackedPkts: num(c.untrackedPkts),
          noServerPkts: num(c.noServerPkts),
          bytes: num(c.bytes),
          replyPkts: num(c.replyPkts),
          replyBytes: num(c.replyBytes),
        },
        backends: v.backends.map((b) => {
          const s = dp.maps.beStats.sum(b.id, addRecords) ?? { packets: 0n, bytes: 0n };
          return { address: b.address, port: b.port, packets: num(s.packets), bytes: num(s.bytes) };
        }),
      };
    }),
  };
}

const hostPort = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

export function readFlows(dp: Dataplane, vips: VipView[], timeoutS: number, limit: number): FlowView[] {
  const backends = new Map(vips.flatMap((v) => v.backends.map((b) => [b.id, b] as const)));
  const now = process.hrtime.bigint();
  const out: FlowView[] = [];
  for (const [k, perCpu] of dp.maps.flows.entries()) {
    perCpu.forEach((f, cpu) => {
      if (f.backendId === 0 || out.length >= limit) return;
      const b = backends.get(f.backendId);
      const idle = Number(now - f.lastSeenNs) / 1e9;
      out.push({
        cpu,
        protocol: k.proto === 6 ? 'tcp' : k.proto === 17 ? 'udp' : String(k.proto),
        client: hostPort(k.saddr, k.sport),
        vip: hostPort(k.daddr, k.dport),
        backend: b ? hostPort(b.address, b.port) : `backend #${f.backendId} (removed)`,
        idleSeconds: Math.max(0, idle),
        stale: !b || b.gen !== f.backendGen || idle > timeoutS,
      });
    });
    if (out.length >= limit) break;
  }
  return out;
}
