// How many exact VIPs and used backend slots have each address. kp_addrs holds what the data path
// reads of it (ADDR_FLAG: a VIP's, a backend's), written only when an address's flags change, so a
// full sync of 90k addresses writes each once.
import { ADDR_FLAG } from '../maps/codecs.js';
import type { BpfMap } from '../maps/map.js';

export type AddrKind = 'vip' | 'be';

interface Count {
  vip: number;
  be: number;
}

const flagsOf = (r: Count | undefined): number => (r ? (r.vip > 0 ? ADDR_FLAG.vip : 0) | (r.be > 0 ? ADDR_FLAG.backend : 0) : 0);

export class AddrRefs {
  private readonly counts = new Map<string, Count>();

  /** `map`: kp_addrs, asked at each write (a resize reloads the data plane). */
  constructor(private readonly map: () => BpfMap<string, number>) {}

  /** Counted without a write (a snapshot being read); reconcile() writes them. */
  count(addr: string, kind: AddrKind, delta: number): void {
    this.bump(addr, kind, delta);
  }

  /** kp_addrs made to match the counts (it may predate them). */
  reconcile(): void {
    const map = this.map();
    const have = new Map(map.entries());
    for (const [addr, c] of this.counts) if (have.get(addr) !== flagsOf(c)) map.update(addr, flagsOf(c));
    for (const addr of have.keys()) if (!this.counts.has(addr)) map.delete(addr);
  }

  /**
   * A change of an address's count; its flags, when they change, go into `batch` (address -> flags,
   * 0 to delete) when a batch is open, else to kp_addrs at once.
   */
  ref(addr: string, kind: AddrKind, delta: number, batch?: Map<string, number>): void {
    const before = flagsOf(this.counts.get(addr));
    const after = this.bump(addr, kind, delta);
    if (after === before) return;
    if (batch) batch.set(addr, after);
    else if (after) this.map().update(addr, after);
    else this.map().delete(addr);
  }

  /** The count changed, and the address's flags after it (one lookup: a full sync counts 90k). */
  private bump(addr: string, kind: AddrKind, delta: number): number {
    let r = this.counts.get(addr);
    if (!r) {
      r = { vip: 0, be: 0 };
      this.counts.set(addr, r);
    }
    r[kind] += delta;
    if (r.vip <= 0 && r.be <= 0) {
      this.counts.delete(addr);
      return 0;
    }
    return flagsOf(r);
  }
}
