// The map writes of a deferred batch (apply): tens of thousands of backends and addresses cost a
// few batch syscalls instead of one each. Made in the order a reader needs: counters zeroed and
// backend slots written before the addresses and VIP entries that lead to them.
import { injectAt } from '../inject.js';
import type { KpMaps } from '../maps/kpmaps.js';
import type { Backend, Vip, VipKey } from '../maps/codecs.js';

export class WriteBatch {
  /** ids whose counters start at zero (an id freed and taken again in one batch is listed twice: harmless) */
  readonly vipZeroStats: number[] = [];
  readonly zeroStats: number[] = [];
  /** backend slots, where kp_backends is not written through its mapping */
  readonly backends = new Map<number, Backend>();
  /** address -> its flags (0: delete) */
  readonly addrs = new Map<string, number>();
  /** entries of VIPs added in this batch, by their key */
  readonly vips = new Map<string, [VipKey, Vip]>();

  flush(maps: KpMaps): void {
    maps.vipStats.zero(this.vipZeroStats);
    maps.beStats.zero(this.zeroStats);
    if (this.backends.size) maps.backends.updateBatch([...this.backends]);
    const set = [...this.addrs].filter(([, f]) => f !== 0);
    if (set.length) maps.addrs.updateBatch(set);
    for (const [addr, f] of this.addrs) if (f === 0) maps.addrs.delete(addr);
    injectAt('apply.flush');
    // The VIP entries last: a VIP becomes reachable once what it points at is in place.
    if (this.vips.size) maps.vips.updateBatch([...this.vips.values()]);
  }
}
