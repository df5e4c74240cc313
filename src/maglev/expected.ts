// The Maglev tables a config's VIPs will publish, as far as the config tells: what a full sync
// builds ahead (maglev/prefetch.ts). The data plane decides; a table it needs that is not among
// these, or differs, is built when it is published.
import type { KpConfig } from '../config/types.js';
import { autoTableLen } from './primes.js';
import type { PrefetchJob } from './prefetch.js';

type VipConfig = KpConfig['vips'][number];

/** A VIP's Maglev table (or its local-only one) as a prefetch names it. */
export const maglevTableTag = (v: { prefix: string; protocol: string; port: number }, local: boolean): string => `${v.prefix} ${v.protocol} ${v.port}${local ? ' local' : ''}`;

/** The tables of `vips` (those `want` names, by maglevTableTag(v, false)): the file's backends,
 * ready ones first (KEP-1669), and the local ones apart. */
export function configTables(vips: readonly VipConfig[], want?: (tag: string) => boolean): PrefetchJob[] {
  const jobs: PrefetchJob[] = [];
  const pick = (bs: VipConfig['backends']) => {
    const ready = bs.filter((b) => !b.terminating);
    return (ready.length ? ready : bs).map((b) => ({ id: 0, key: b.address, weight: b.weight }));
  };
  for (const v of vips) {
    if (!v.backends.length) continue;
    const tag = maglevTableTag(v, false);
    if (want && !want(tag)) continue;
    const all = pick(v.backends);
    const size = v.new_len ?? autoTableLen(all.length);
    jobs.push({ tag, backends: all, size });
    if (v.external_traffic_policy === 'local' || v.internal_traffic_policy === 'local') {
      const local = v.backends.filter((b) => b.local);
      if (local.length) jobs.push({ tag: maglevTableTag(v, true), backends: pick(local), size });
    }
  }
  return jobs;
}
