// The connection table (kp_ct) read back: which connections are live, and a listing for `show flows`.
// A connection's forward record holds the client's last packet, its reply entry the backend's (replies
// that take the data path's fast path update only the reply entry), so both are read.
import type { Dataplane } from '../loader/index.js';
import { CT_FLAG, CT_STATES, ct as ctCodec, flowKey as flowKeyCodec, LAYOUTS, type Ct, type FlowKey } from '../maps/codecs.js';
import { timeoutOfState, type CtTimeouts } from '../config/timeouts.js';
import type { FlowView, VipView } from './types.js';
import { hostPort, writeAddr } from '../maps/addr.js';

const NS_PER_S = 1_000_000_000n;

/** `then` is within state's timeout of `now` (mirrors kp_ct_idle). */
function recent(state: number, then: bigint, timeouts: CtTimeouts, now: bigint): boolean {
  if (state === 0 || state >= CT_STATES.length) return false;
  const t = BigInt(timeoutOfState(timeouts, state)) * NS_PER_S;
  return t === 0n || now <= then || now - then <= t;
}

/** A forward record whose connection is live: either direction within its state's timeout. */
export function ctLive(c: Ct, timeouts: CtTimeouts, now: bigint, reply?: Ct): boolean {
  if (c.flags & CT_FLAG.reply) return false;
  return recent(c.state, c.lastSeenNs, timeouts, now) || (reply !== undefined && recent(c.state, reply.lastSeenNs, timeouts, now));
}

const replyId = (client: string, clientPort: number, vip: string, vipPort: number, proto: number) => `${client}|${clientPort}|${vip}|${vipPort}|${proto}`;

const [KEY_SADDR] = LAYOUTS.kp_flow_key.fields.saddr;
const [KEY_DIR] = LAYOUTS.kp_flow_key.fields.dir;
const [CT_BACKEND_ID] = LAYOUTS.kp_ct.fields.backend_id;

/**
 * Forward records with the reply entry of each, where it has one. With `only` (backend id ->
 * address), just the connections of those backends: the others are skipped undecoded, their forward
 * records by backend id, their reply entries by source address (a reply comes from the backend), so
 * a drain's walk of a million connections makes objects only for the draining backends' few.
 */
function connections(dp: Dataplane, only?: ReadonlyMap<number, string>): Array<{ key: FlowKey; fwd: Ct; reply?: Ct }> {
  const fwd: Array<[FlowKey, Ct]> = [];
  const replies = new Map<string, Ct>();
  const take = (k: FlowKey, c: Ct) => {
    // A masqueraded connection's reply tuple goes to the masquerade address; its entry keeps the client's.
    if (k.dir) replies.set(replyId(c.clientAddr ?? k.daddr, c.clientPort, c.vipAddr, c.vipPort, k.proto), c);
    else fwd.push([k, c]);
  };
  const addrs = only && new Set([...only.values()].map((a) => addrKey(a)));
  const scanned =
    only !== undefined &&
    dp.maps.ct.scanBatch((keys, ko, vals, vo) => {
      const reply = keys[ko + KEY_DIR] !== 0;
      if (reply ? !addrs!.has(keys.toString('latin1', ko + KEY_SADDR, ko + KEY_SADDR + 16)) : !only.has(vals.readUInt32LE(vo + CT_BACKEND_ID))) return;
      take(flowKeyCodec.decode(keys, ko), ctCodec.decode(vals, vo));
    });
  if (!scanned) for (const [k, c] of dp.maps.ct.entries()) if (!only || (k.dir ? addrs!.has(addrKey(k.saddr)) : only.has(c.backendId))) take(k, c);
  return fwd.map(([key, c]) => ({ key, fwd: c, reply: replies.get(replyId(key.saddr, key.sport, key.daddr, key.dport, key.proto)) }));
}

/** An address as kp_ct keys hold it (16 bytes), as a string to look up. */
function addrKey(a: string): string {
  const b = Buffer.alloc(16);
  writeAddr(a, b, 0);
  return b.toString('latin1');
}

/** Backend id -> the slot generations a live connection uses; with `only` (backend id -> address),
 * of those backends alone. */
export function backendsInUse(dp: Dataplane, timeouts: CtTimeouts, only?: ReadonlyMap<number, string>): Map<number, Set<number>> {
  const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock of bpf_ktime_get_coarse_ns
  const inUse = new Map<number, Set<number>>();
  for (const { fwd, reply } of connections(dp, only)) {
    if (!ctLive(fwd, timeouts, now, reply)) continue;
    let gens = inUse.get(fwd.backendId);
    if (!gens) inUse.set(fwd.backendId, (gens = new Set()));
    gens.add(fwd.backendGen);
  }
  // The node's own UDP sockets (kp_sock) keep theirs while they send or receive within the UDP
  // timeout. A TCP socket is connected to its backend itself: freeing the slot cannot break it.
  const udpNs = BigInt(Math.max(timeouts.udp, timeouts.udp_stream)) * 1_000_000_000n;
  for (const [k, v] of dp.maps.sock.entries()) {
    if (k.proto !== 17 || now - v.lastSeenNs > udpNs) continue;
    let gens = inUse.get(v.backendId);
    if (!gens) inUse.set(v.backendId, (gens = new Set()));
    gens.add(v.backendGen);
  }
  return inUse;
}


/** Live and lingering connections, one row each. */
export function readFlows(dp: Dataplane, vips: VipView[], timeouts: CtTimeouts, limit: number): FlowView[] {
  const backends = new Map(vips.flatMap((v) => v.backends.map((b) => [b.id, b] as const)));
  const now = process.hrtime.bigint();
  const out: FlowView[] = [];
  for (const { key: k, fwd: c, reply } of connections(dp)) {
    if (out.length >= limit) break;
    const b = backends.get(c.backendId);
    const last = reply && reply.lastSeenNs > c.lastSeenNs ? reply.lastSeenNs : c.lastSeenNs;
    const idle = Number(now - last) / 1e9;
    out.push({
      protocol: k.proto === 6 ? 'tcp' : k.proto === 17 ? 'udp' : String(k.proto),
      client: hostPort(k.saddr, k.sport),
      vip: hostPort(k.daddr, k.dport),
      backend: b ? hostPort(b.address, b.port) : `backend #${c.backendId} (removed)`,
      state: CT_STATES[c.state] ?? String(c.state),
      ...(c.flags & CT_FLAG.masq ? { masqueradedAs: hostPort(c.vipAddr, c.clientPort) } : c.clientPort !== k.sport ? { natPort: c.clientPort } : {}),
      ...(c.flags & CT_FLAG.loose ? { loose: true } : {}),
      idleSeconds: Math.max(0, idle),
      timeoutSeconds: timeoutOfState(timeouts, c.state),
      stale: !b || b.gen !== c.backendGen || !ctLive(c, timeouts, now, reply),
    });
  }
  return out;
}
