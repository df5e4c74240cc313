// Counters read back from the per-CPU maps, summed over CPUs.
import type { Dataplane } from '../loader/index.js';
import { addU64 } from '../maps/map.js';
import type { CpuCounters } from '../maps/cpucounters.js';
import { LAYOUTS, type StructLayout } from '../maps/codecs.js';
import type { StatsView, VipView } from './types.js';

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
  'xlate',
  'drop_xlate',
] as const;

const num = (x: bigint) => Number(x);

/** Counters of many ids (u64 fields by their layout offsets, as Numbers), summed over the CPUs
 * through the array's mapping. */
function sums<V extends object>(map: CpuCounters<V>, ids: number[], layout: StructLayout, names: Record<string, keyof V>): (id: number) => Record<keyof V, number> | undefined {
  const all = map.sumCounters(ids);
  const at = Object.entries(names).map(([field, key]) => [key, layout.fields[field][0] / 8] as const);
  return (id) => {
    const a = all.get(id);
    return a && (Object.fromEntries(at.map(([key, i]) => [key, a[i]])) as Record<keyof V, number>);
  };
}

/** struct kp_vip_stats' fields and their names in VipStats. */
const VIP_STAT_FIELDS = { existing_pkts: 'existingPkts', first_pkts: 'firstPkts', untracked_pkts: 'untrackedPkts', no_server_pkts: 'noServerPkts', bytes: 'bytes', reply_pkts: 'replyPkts', reply_bytes: 'replyBytes' } as const;
const ZERO_VIP = Object.fromEntries(Object.values(VIP_STAT_FIELDS).map((k) => [k, 0])) as Record<(typeof VIP_STAT_FIELDS)[keyof typeof VIP_STAT_FIELDS], number>;

export function readStats(dp: Dataplane, vips: VipView[]): StatsView {
  const global: Record<string, number> = {};
  KP_STAT_NAMES.forEach((name, i) => (global[name] = num(dp.maps.stats.sum(i, addU64) ?? 0n)));
  const vipSum = sums(dp.maps.vipStats, vips.map((v) => v.id), LAYOUTS.kp_vip_stats, VIP_STAT_FIELDS);
  const beSum = sums(dp.maps.beStats, vips.flatMap((v) => v.backends.map((b) => b.id)), LAYOUTS.kp_backend_stats, { packets: 'packets', bytes: 'bytes' });
  return {
    global,
    vips: vips.map((v) => {
      const c = vipSum(v.id) ?? ZERO_VIP;
      return {
        id: v.id,
        prefix: v.prefix,
        protocol: v.protocol,
        port: v.port,
        targetPort: v.targetPort,
        newLen: v.newLen,
        counters: {
          existingPkts: c.existingPkts,
          firstPkts: c.firstPkts,
          untrackedPkts: c.untrackedPkts,
          noServerPkts: c.noServerPkts,
          bytes: c.bytes,
          replyPkts: c.replyPkts,
          replyBytes: c.replyBytes,
        },
        backends: v.backends.map((b) => {
          const s = beSum(b.id) ?? { packets: 0, bytes: 0 };
          return { address: b.address, port: b.port, packets: s.packets, bytes: s.bytes };
        }),
      };
    }),
  };
}
