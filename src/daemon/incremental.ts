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
  /** each VIP's text in the file, by index (a VIP without one gets a text no file has) */
  texts: string[];
  vips: KpVipConfig[];
  /** VIP text -> its built config, for the next parse to reuse */
  built: Map<string, KpVipConfig>;
}

const headOf = (c: KpConfig) => JSON.stringify([c.conf, c.interfaces]);
const refOf = (v: KpVipConfig): VipRef => ({ prefix: v.prefix, protocol: v.protocol, port: v.port });
const textsOf = (src: Pick<ConfigSource, 'config' | 'vipTexts'>) => src.config.vips.map((_, i) => src.vipTexts[i] || `\0${i}`);

export function appliedOf(src: Pick<ConfigSource, 'config' | 'vipTexts'>, texts = textsOf(src), reuse?: Map<string, KpVipConfig>): Applied {
  let built = reuse;
  // Kept across reloads, rebuilt when stale texts would make it grow past twice the VIPs.
  if (!built || built.size > 2 * texts.length + 16) built = new Map();
  texts.forEach((text, i) => built!.set(text, src.config.vips[i]));
  return { head: headOf(src.config), texts, vips: src.config.vips, built };
}

/**
 * The VIPs added, removed or changed since `last`; `only` is undefined when everything must be
 * compared (nothing applied yet, or conf or interfaces changed).
 */
export function changedVips(last: Applied | undefined, src: Pick<ConfigSource, 'config' | 'vipTexts'>): { only?: VipRef[]; applied: Applied } {
  const texts = textsOf(src);
  if (!last) return { applied: appliedOf(src, texts) };
  const head = headOf(src.config);
  if (head !== last.head) return { applied: appliedOf(src, texts) };
  const next = src.config.vips;
  const only: VipRef[] = [];
  const fresh = new Map<string, KpVipConfig>();
  if (texts.length === last.texts.length) {
    // The usual reload: the same VIPs in the same order, a few of them changed.
    for (let i = 0; i < texts.length; i++) {
      if (texts[i] === last.texts[i]) continue;
      only.push(refOf(last.vips[i]), refOf(next[i]));
      fresh.set(texts[i], next[i]);
    }
  } else {
    const before = new Map(last.vips.map((v, i) => [vipRefKey(v), last.texts[i]]));
    const now = new Set<string>();
    next.forEach((v, i) => {
      const k = vipRefKey(v);
      now.add(k);
      if (before.get(k) !== texts[i]) {
        only.push(refOf(v));
        fresh.set(texts[i], v);
      }
    });
    for (const v of last.vips) if (!now.has(vipRefKey(v))) only.push(refOf(v));
  }
  // A VIP that moved is compared at both of its places: `only` may name one twice, which is harmless.
  const built = last.built.size > 2 * texts.length + 16 ? undefined : last.built;
  const applied: Applied = built
    ? { head, texts, vips: next, built: fresh.size ? (fresh.forEach((v, k) => built.set(k, v)), built) : built }
    : appliedOf(src, texts);
  return { only: dedupe(only), applied };
}

/** changedVips for a source whose VIP `i` alone changed (config/reparse.ts found it), without
 * comparing every VIP's text. */
export function replacedVip(last: Applied, src: Pick<ConfigSource, 'config' | 'vipTexts'>, i: number): { only: VipRef[]; applied: Applied } {
  const texts = last.texts.slice();
  texts[i] = src.vipTexts[i] || `\0${i}`;
  const built = last.built.size > 2 * texts.length + 16 ? new Map(texts.map((t, j) => [t, src.config.vips[j]])) : last.built.set(texts[i], src.config.vips[i]);
  return { only: dedupe([refOf(last.vips[i]), refOf(src.config.vips[i])]), applied: { head: last.head, texts, vips: src.config.vips, built } };
}

function dedupe(refs: VipRef[]): VipRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const k = vipRefKey(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
