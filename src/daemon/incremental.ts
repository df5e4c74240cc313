// What changed between the config the daemon applied last and a new one, so that a reload reads
// back and compares only the VIPs that differ: a one-endpoint change among 10k services should cost
// one VIP's work, not a walk of every map.
import type { VipRef } from '../config/diff.js';
import type { KpConfig, KpVipConfig } from '../config/types.js';
import { vipRefKey } from '../dataplane/apply.js';

export interface Applied {
  /** conf and interfaces as text: when they differ, everything is compared */
  head: string;
  /** VIP identity -> its config as text */
  vips: Map<string, string>;
}

const headOf = (c: KpConfig) => JSON.stringify([c.conf, c.interfaces]);
const refOf = (v: KpVipConfig): VipRef => ({ prefix: v.prefix, protocol: v.protocol, port: v.port });

export function appliedOf(c: KpConfig): Applied {
  return { head: headOf(c), vips: new Map(c.vips.map((v) => [vipRefKey(v), JSON.stringify(v)])) };
}

/**
 * The VIPs added, removed or changed since `last`, with `next`'s fingerprint; `only` is undefined
 * when everything must be compared (nothing applied yet, or conf or interfaces changed).
 */
export function changedVips(last: Applied | undefined, next: KpConfig): { only?: VipRef[]; applied: Applied } {
  const applied = appliedOf(next);
  if (!last || last.head !== applied.head) return { applied };
  const only: VipRef[] = [];
  for (const v of next.vips) {
    const k = vipRefKey(v);
    if (last.vips.get(k) !== applied.vips.get(k)) only.push(refOf(v));
  }
  for (const [k, text] of last.vips) {
    if (!applied.vips.has(k)) only.push(refOf(JSON.parse(text) as KpVipConfig));
  }
  return { only, applied };
}
