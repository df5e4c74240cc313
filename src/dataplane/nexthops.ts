// The data path's next-hop caches: kp_nexthop (per destination) and kp_be_hops (per backend,
// invalidated by kp_config.hop_gen). Reply entries' own copies expire within KP_NEXTHOP_TTL_MS.
import type { KpMaps } from '../maps/kpmaps.js';

/** Drop every cached FIB result, so the next packet to each destination looks its route up again. */
export function flushNextHops(maps: Pick<KpMaps, 'nexthop' | 'config'>): void {
  for (const k of [...maps.nexthop.keys()]) maps.nexthop.delete(k);
  const c = maps.config.lookup(0);
  if (c) maps.config.update(0, { ...c, hopGen: ((c.hopGen ?? 0) + 1) >>> 0 });
}
