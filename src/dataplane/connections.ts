// The connection table (kp_ct) read back: which records are live, and a listing for `show flows`.
import type { Dataplane } from '../loader/index.js';
import { CT_FLAG, CT_STATES, type Ct } from '../maps/codecs.js';
import { timeoutOfState, type CtTimeouts } from '../config/timeouts.js';
import type { FlowView, VipView } from './types.js';

const NS_PER_S = 1_000_000_000n;

/** A forward record idle for less than its state's timeout (mirrors kp_ct_expired). */
export function ctLive(c: Ct, timeouts: CtTimeouts, now: bigint): boolean {
  if (c.flags & CT_FLAG.reply) return false;
  if (c.state >= CT_STATES.length || c.state === 0) return false;
  const t = BigInt(timeoutOfState(timeouts, c.state)) * NS_PER_S;
  return t === 0n || now <= c.lastSeenNs || now - c.lastSeenNs <= t;
}

/** Backend ids that a live connection uses. */
export function backendsInUse(dp: Dataplane, timeouts: CtTimeouts): Map<number, Set<number>> {
  const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock of bpf_ktime_get_coarse_ns
  const inUse = new Map<number, Set<number>>(); // backend id -> gens in use
  for (const [, c] of dp.maps.ct.entries()) {
    if (!ctLive(c, timeouts, now)) continue;
    let gens = inUse.get(c.backendId);
    if (!gens) inUse.set(c.backendId, (gens = new Set()));
    gens.add(c.backendGen);
  }
  return inUse;
}

const hostPort = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** Live and lingering connections, forward records only (one per connection). */
export function readFlows(dp: Dataplane, vips: VipView[], timeouts: CtTimeouts, limit: number): FlowView[] {
  const backends = new Map(vips.flatMap((v) => v.backends.map((b) => [b.id, b] as const)));
  const now = process.hrtime.bigint();
  const out: FlowView[] = [];
  for (const [k, c] of dp.maps.ct.entries()) {
    if (out.length >= limit) break;
    if (k.dir !== 0) continue;
    const b = backends.get(c.backendId);
    const idle = Number(now - c.lastSeenNs) / 1e9;
    out.push({
      protocol: k.proto === 6 ? 'tcp' : k.proto === 17 ? 'udp' : String(k.proto),
      client: hostPort(k.saddr, k.sport),
      vip: hostPort(k.daddr, k.dport),
      backend: b ? hostPort(b.address, b.port) : `backend #${c.backendId} (removed)`,
      state: CT_STATES[c.state] ?? String(c.state),
      ...(c.clientPort !== k.sport ? { natPort: c.clientPort } : {}),
      ...(c.flags & CT_FLAG.loose ? { loose: true } : {}),
      idleSeconds: Math.max(0, idle),
      timeoutSeconds: timeoutOfState(timeouts, c.state),
      stale: !b || b.gen !== c.backendGen || !ctLive(c, timeouts, now),
    });
  }
  return out;
}
