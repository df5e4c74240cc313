// What changed between the config the daemon applied last and a new one, so that a reload reads
// back and compares only the VIPs that differ: a one-endpoint change among 10k services should cost
// one VIP's work, not a walk of every map. VIPs are compared by their text in the file.
import type { VipRef } from '../config/diff.js';
import type { KpConfig, KpVipConfig } from '../config/types.js';
import type { ConfigSource } from '../config/validate.js';
import { vipRefKey } from '../dataplane/apply.js';

export interface Applied {
  /** conf and interfaces as text: when they differ, everything is compared */
  head: string;
  /** VIP identity -> its text in the file */
  vips: Map<string, { text: string; ref: VipRef }>;
  /** VIP text -> its built config, for the next parse to reuse */
  built: Map<string, KpVipConfig>;
}

const headOf = (c: KpConfig) => JSON.stringify([c.conf, c.interfaces]);
const refOf = (v: KpVipConfig): VipRef => ({ prefix: v.prefix, protocol: v.protocol, port: v.port });

export function appliedOf(src: Pick<ConfigSource, 'config' | 'vipTexts'>): Applied {
  const vips = new Map<string, { text: string; ref: VipRef }>();
  const built = new Map<string, KpVipConfig>();
  src.config.vips.forEach((v, i) => {
    // A VIP without its own text (not an object in the file: impossible once valid) is never equal.
    const text = src.vipTexts[i] || `\0${i}`;
    vips.set(vipRefKey(v), { text, ref: refOf(v) });
    built.set(text, v);
  });
  return { head: headOf(src.config), vips, built };
}

/**
 * The VIPs added, removed or changed since `last`; `only` is undefined when everything must be
 * compared (nothing applied yet, or conf or interfaces changed).
 */
export function changedVips(last: Applied | undefined, src: Pick<ConfigSource, 'config' | 'vipTexts'>): { only?: VipRef[]; applied: Applied } {
  const applied = appliedOf(src);
  if (!last || last.head !== applied.head) return { applied };
  const only: VipRef[] = [];
  for (const [k, v] of applied.vips) if (last.vips.get(k)?.text !== v.text) only.push(v.ref);
  for (const [k, v] of last.vips) if (!applied.vips.has(k)) only.push(v.ref);
  return { only, applied };
}
