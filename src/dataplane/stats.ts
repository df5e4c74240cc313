// Counters read back from the per-CPU maps, summed over CPUs.
import type { Dataplane } from '../loader/index.js';
import { addRecords, addU64 } from '../maps/map.js';
import type { StatsView, VipView } from './types.js';
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
  'pass_malformed',
  'dnat',
  'snat',
  'drop_ttl',
  'reject',
  'ct_loose',
  'ct_remap',
  'drop_ct_clash',
  'ct_stale',
  'icmp_xlate',
  'icmp_too_big',
  'frag_xlate',
  'drop_frag',
  'fib_lookup',
  'drop_src_range',
  'drop_no_local',
  'masq',
  'drop_masq_ports',
  'sock_xlate',
  'sock_no_backend',
  'masq_evict',
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
