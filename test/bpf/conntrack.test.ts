// Connection tracking in build/kp.bpf.o under BPF_PROG_TEST_RUN: every TCP state transition from
// both directions, per-state timeouts, UDP, loose pick-up, closed connections and the collision
// policy (client-port remap between NATed connections, refusal of a direct connection that would
// collide with a live NATed one). Each step checks the verdict, the exact output bytes (built from
// fields, checksums from scratch) and the counters that moved.
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import * as codecs from '../../src/maps/codecs.js';
import { addU64 } from '../../src/maps/map.js';
import { flowHash, maglevSlot } from '../../src/maglev/flow-hash.js';
import { buildPacket, IPPROTO_TCP, IPPROTO_UDP, l4Checksum, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, pinToCpu, testConfig, XDP, type KpStatName } from '../helpers/bpf.js';
import type { CtTimeouts } from '../../src/config/timeouts.js';

const SEED = 0x5eed1234;
const TABLE_LEN = 7;
const TCP_FIN = 0x01;
const TCP_RST = 0x04;
const IDLE_MS = 1200; // past a 1 s timeout on the coarse clock
const CLIENT = '198.18.0.10';
// Two VIPs that share backend 1 (a pod behind a ClusterIP and an external IP, say).
const VIP_A = { id: 1, addr: '198.18.10.1', port: 80 };
const VIP_B = { id: 2, addr: '198.18.10.2', port: 80 };
const VIP_U = { id: 3, addr: '198.18.10.3', port: 53 };
const B1 = { id: 1, addr: '198.18.20.1', port: 8080 };
const B2 = { id: 2, addr: '198.18.20.2', port: 8080 };
const BU = { id: 3, addr: '198.18.20.3', port: 5353 };
type Be = typeof B1;

const COUNTED = ['DNAT', 'SNAT', 'PASS_NO_MATCH', 'CT_LOOSE', 'CT_REMAP', 'DROP_CT_CLASH', 'CT_STALE', 'TX_PASS'] as const satisfies readonly KpStatName[];
type Counted = (typeof COUNTED)[number];

let dp: Dataplane;

function setTimeouts(t: Partial<CtTimeouts> = {}): void {
  dp.maps.config.update(0, testConfig({ hashSeed: SEED, flags: KP_CONF_F_NO_FIB, timeouts: t }));
}

function setup(): void {
  setTimeouts();
  for (const v of [VIP_A, VIP_B]) dp.maps.vips.update({ addr: v.addr, port: v.port, proto: IPPROTO_TCP }, { id: v.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  dp.maps.vips.update({ addr: VIP_U.addr, port: VIP_U.port, proto: IPPROTO_UDP }, { id: VIP_U.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  dp.maps.backends.update(B1.id, { ...B1, state: BACKEND_STATE.active, gen: 1, vipId: VIP_A.id, weight: 1 });
  dp.maps.backends.update(B2.id, { ...B2, state: BACKEND_STATE.active, gen: 1, vipId: VIP_A.id, weight: 1 });
  dp.maps.backends.update(BU.id, { ...BU, state: BACKEND_STATE.active, gen: 1, vipId: VIP_U.id, weight: 1 });
  dp.setMaglevTable(VIP_A.id, Array(TABLE_LEN).fill(B1.id));
  dp.setMaglevTable(VIP_B.id, Array(TABLE_LEN).fill(B1.id));
  dp.setMaglevTable(VIP_U.id, Array(TABLE_LEN).fill(BU.id));
}

// ---- packets -------------------------------------------------------------------------------

const toVip = (vip: typeof VIP_A, sport: number, flags: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
  src: CLIENT,
  dst: vip.addr,
  proto: 'tcp',
  sport,
  dport: vip.port,
  tcpFlags: flags,
  seq: 1000,
  ack: flags & TCP_ACK ? 5001 : 0,
  ...extra,
});
const fromBe = (b: Be, dport: number, flags: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
  src: b.addr,
  dst: CLIENT,
  proto: 'tcp',
  sport: b.port,
  dport,
  tcpFlags: flags,
  seq: 5000,
  ack: 1001,
  ...extra,
});
const dnatTo = (p: PacketSpec, b: Be, sport = p.sport): PacketSpec => ({ ...p, dst: b.addr, dport: b.port, sport });
const snatFrom = (p: PacketSpec, vip: typeof VIP_A, dport = p.dport): PacketSpec => ({ ...p, src: vip.addr, sport: vip.port, dport });
const fwdKey = (vip: typeof VIP_A, sport: number, proto = IPPROTO_TCP): codecs.FlowKey => ({ saddr: CLIENT, daddr: vip.addr, sport, dport: vip.port, proto });
const state = (vip: typeof VIP_A, sport: number, proto = IPPROTO_TCP) => codecs.CT_STATES[dp.maps.ct.lookup(fwdKey(vip, sport, proto))?.state ?? 0];

// ---- one step: send, compare, count ---------------------------------------------------------

function counters(): Record<Counted, bigint> {
  return Object.fromEntries(COUNTED.map((n) => [n, dp.maps.stats.sum(KP_STAT[n], addU64) ?? 0n])) as Record<Counted, bigint>;
}

/** Sends `input`; checks verdict, bytes (`'input'` = untouched) and that exactly `stats` moved. */
function step(t: Test, what: string, input: PacketSpec, verdict: number, output: PacketSpec | 'input', stats: Partial<Record<Counted, number>>): Buffer {
  const before = counters();
  const res = testRun(dp.progFd, buildPacket(input));
  const after = counters();
  t.equal(res.retval, verdict, `${what}: verdict`);
  const want = output === 'input' ? buildPacket(input) : buildPacket(output);
  t.equal(res.data.toString('hex'), want.toString('hex'), `${what}: output bytes`);
  if (output !== 'input') t.same(verifyChecksums(res.data), { ip: true, l4: true }, `${what}: checksums from scratch`);
  for (const n of COUNTED) t.equal(after[n] - before[n], BigInt(stats[n] ?? 0), `${what}: ${n} delta`);
  return res.data;
}
const FWD = { DNAT: 1, TX_PASS: 1 };
const REV = { SNAT: 1, TX_PASS: 1 };

const reason = bpfSkipReason();
if (reason) {
  t.skip(`connection tracking fixtures: ${reason}`, async () => {});
} else {
  if (!pinToCpu(0)) throw new Error('sched_setaffinity(CPU 0) failed');
  dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  setup();

  t.test('a TCP connection through every state, both directions translated', async (t) => {
    const sp = 41000;
    const syn = toVip(VIP_A, sp, TCP_SYN);
    step(t, 'client SYN', syn, XDP.PASS, dnatTo(syn, B1), FWD);
    t.equal(state(VIP_A, sp), 'syn_sent');
    const synAck = fromBe(B1, sp, TCP_SYN | TCP_ACK);
    step(t, 'backend SYN-ACK', synAck, XDP.PASS, snatFrom(synAck, VIP_A), REV);
    t.equal(state(VIP_A, sp), 'syn_recv');
    const ack = toVip(VIP_A, sp, TCP_ACK, { payload: Buffer.from('GET /') });
    step(t, 'client ACK', ack, XDP.PASS, dnatTo(ack, B1), FWD);
    t.equal(state(VIP_A, sp), 'established');
    const fin = toVip(VIP_A, sp, TCP_FIN | TCP_ACK);
    step(t, 'client FIN', fin, XDP.PASS, dnatTo(fin, B1), FWD);
    t.equal(state(VIP_A, sp), 'fin_wait');
    const finAck = fromBe(B1, sp, TCP_ACK, { payload: Buffer.from('still sending') });
    step(t, 'backend ACKs the FIN and keeps sending', finAck, XDP.PASS, snatFrom(finAck, VIP_A), REV);
    t.equal(state(VIP_A, sp), 'close_wait');
    const fin2 = fromBe(B1, sp, TCP_FIN | TCP_ACK);
    step(t, 'backend FIN', fin2, XDP.PASS, snatFrom(fin2, VIP_A), REV);
    t.equal(state(VIP_A, sp), 'last_ack');
    const last = toVip(VIP_A, sp, TCP_ACK);
    step(t, 'client last ACK', last, XDP.PASS, dnatTo(last, B1), FWD);
    t.equal(state(VIP_A, sp), 'time_wait');
    const retrans = fromBe(B1, sp, TCP_FIN | TCP_ACK);
    step(t, 'a retransmitted FIN in TIME_WAIT is still translated', retrans, XDP.PASS, snatFrom(retrans, VIP_A), REV);
  });

  t.test('RST from either side closes; a new SYN on the tuple is a new connection with a fresh pick', async (t) => {
    const sp = 41001;
    step(t, 'SYN', toVip(VIP_A, sp, TCP_SYN), XDP.PASS, dnatTo(toVip(VIP_A, sp, TCP_SYN), B1), FWD);
    const rst = fromBe(B1, sp, TCP_RST | TCP_ACK);
    step(t, 'backend RST', rst, XDP.PASS, snatFrom(rst, VIP_A), REV);
    t.equal(state(VIP_A, sp), 'close');
    dp.setMaglevTable(VIP_A.id, Array(TABLE_LEN).fill(B2.id));
    const before = dp.maps.vipStats.sum(VIP_A.id, (a, b) => ({ ...a, firstPkts: a.firstPkts + b.firstPkts }))!.firstPkts;
    step(t, 'client SYN again', toVip(VIP_A, sp, TCP_SYN), XDP.PASS, dnatTo(toVip(VIP_A, sp, TCP_SYN), B2), FWD);
    const after = dp.maps.vipStats.sum(VIP_A.id, (a, b) => ({ ...a, firstPkts: a.firstPkts + b.firstPkts }))!.firstPkts;
    t.equal(after - before, 1n, 'counted as a first session packet');
    t.equal(state(VIP_A, sp), 'syn_sent');
    step(t, "the old backend's late segment is not translated", fromBe(B1, sp, TCP_ACK), XDP.PASS, 'input', { PASS_NO_MATCH: 1, CT_STALE: 1 });
    const ack = toVip(VIP_A, sp, TCP_ACK);
    const client = toVip(VIP_A, sp, TCP_RST);
    step(t, 'the client resets too', client, XDP.PASS, dnatTo(client, B2), FWD);
    t.equal(state(VIP_A, sp), 'close');
    step(t, 'a non-SYN on a closed connection still goes to its backend', ack, XDP.PASS, dnatTo(ack, B2), FWD);
    dp.setMaglevTable(VIP_A.id, Array(TABLE_LEN).fill(B1.id));
  });

  t.test('UDP: unreplied, then a stream once the backend answers', async (t) => {
    const sp = 41002;
    const q: PacketSpec = { src: CLIENT, dst: VIP_U.addr, proto: 'udp', sport: sp, dport: VIP_U.port, payload: Buffer.from('q') };
    step(t, 'query', q, XDP.PASS, { ...q, dst: BU.addr, dport: BU.port }, FWD);
    t.equal(state(VIP_U, sp, IPPROTO_UDP), 'udp');
    const a: PacketSpec = { src: BU.addr, dst: CLIENT, proto: 'udp', sport: BU.port, dport: sp, payload: Buffer.from('answer') };
    step(t, 'answer', a, XDP.PASS, { ...a, src: VIP_U.addr, sport: VIP_U.port }, REV);
    t.equal(state(VIP_U, sp, IPPROTO_UDP), 'udp_stream');
  });

  t.test('a UDP checksum that comes out 0 after NAT is sent as 0xffff', async (t) => {
    let q: PacketSpec | undefined;
    // One 16-bit payload word makes the translated checksum any value: search it.
    for (let w = 0; w < 0x10000 && !q; w++) {
      const payload = Buffer.alloc(2);
      payload.writeUInt16BE(w);
      const p: PacketSpec = { src: CLIENT, dst: VIP_U.addr, proto: 'udp', sport: 50000, dport: VIP_U.port, payload };
      if (l4Checksum(buildPacket({ ...p, dst: BU.addr, dport: BU.port })) === 0xffff) q = p;
    }
    t.ok(q, 'found a datagram whose translated checksum computes to 0');
    const out = step(t, 'DNAT', q!, XDP.PASS, { ...q!, dst: BU.addr, dport: BU.port }, FWD);
    t.equal(l4Checksum(out), 0xffff, 'never 0, which would mean "no checksum"');
  });

  t.test('loose pick-up: a mid-connection packet without a record goes to the Maglev backend, established', async (t) => {
    const sp = 41003;
    const ack = toVip(VIP_A, sp, TCP_ACK, { payload: Buffer.from('after a restart') });
    step(t, 'ACK without a record', ack, XDP.PASS, dnatTo(ack, B1), { ...FWD, CT_LOOSE: 1 });
    t.equal(state(VIP_A, sp), 'established');
    t.equal(dp.maps.ct.lookup(fwdKey(VIP_A, sp))!.flags & codecs.CT_FLAG.loose, codecs.CT_FLAG.loose, 'flagged as picked up');
    const r = fromBe(B1, sp, TCP_ACK);
    step(t, 'its reply', r, XDP.PASS, snatFrom(r, VIP_A), REV);
    dp.maps.ct.delete(fwdKey(VIP_A, sp)); // evicted
    step(t, 'evicted mid-stream: picked up again on the same backend', ack, XDP.PASS, dnatTo(ack, B1), { ...FWD, CT_LOOSE: 1 });
    step(t, 'and the reply entry is its own again', r, XDP.PASS, snatFrom(r, VIP_A), REV);
  });

  t.test('replies of an established connection need only its reply entry; FIN and RST take the slow path', async (t) => {
    const sp = 41009;
    const ack = toVip(VIP_A, sp, TCP_ACK);
    step(t, 'loose ACK', ack, XDP.PASS, dnatTo(ack, B1), { ...FWD, CT_LOOSE: 1 });
    const r = fromBe(B1, sp, TCP_ACK, { payload: Buffer.from('data') });
    step(t, 'first reply (slow path: mirrors the state)', r, XDP.PASS, snatFrom(r, VIP_A), REV);
    const rk = { saddr: B1.addr, daddr: CLIENT, sport: B1.port, dport: sp, proto: IPPROTO_TCP, dir: codecs.KP_DIR.reply };
    t.equal(codecs.CT_STATES[dp.maps.ct.lookup(rk)!.state], 'established', 'the reply entry mirrors the state');
    const fwdBefore = dp.maps.ct.lookup(fwdKey(VIP_A, sp))!;
    dp.maps.ct.update(fwdKey(VIP_A, sp), { ...fwdBefore, lastSeenNs: 1n }); // would be long expired on its own
    step(t, 'a reply whose forward record looks idle is still translated (its own entry is recent)', r, XDP.PASS, snatFrom(r, VIP_A), REV);
    step(t, 'the client is still on its connection (the replies kept it alive)', ack, XDP.PASS, dnatTo(ack, B1), FWD);
    const fin = fromBe(B1, sp, TCP_FIN | TCP_ACK);
    step(t, 'the backend FIN goes through the forward record', fin, XDP.PASS, snatFrom(fin, VIP_A), REV);
    t.equal(state(VIP_A, sp), 'fin_wait');
    t.equal(codecs.CT_STATES[dp.maps.ct.lookup(rk)!.state], 'fin_wait', 'and the mirror follows');
    dp.maps.backends.update(B1.id, { ...B1, state: BACKEND_STATE.active, gen: 2, vipId: VIP_A.id, weight: 1 });
    step(t, 'after a flush (gen bump) a reply is not translated', r, XDP.PASS, 'input', { PASS_NO_MATCH: 1, CT_STALE: 1 });
    dp.maps.backends.update(B1.id, { ...B1, state: BACKEND_STATE.active, gen: 1, vipId: VIP_A.id, weight: 1 });
  });

  t.test('traffic in either direction keeps a connection alive; idle past its state timeout it ends', async (t) => {
    setTimeouts({ tcp_established: 2 });
    const sp = 41004;
    step(t, 'loose ACK (established)', toVip(VIP_A, sp, TCP_ACK), XDP.PASS, dnatTo(toVip(VIP_A, sp, TCP_ACK), B1), { ...FWD, CT_LOOSE: 1 });
    await sleep(IDLE_MS);
    const r = fromBe(B1, sp, TCP_ACK, { payload: Buffer.from('server speaks') });
    step(t, 'after 1.2 s the server speaks first', r, XDP.PASS, snatFrom(r, VIP_A), REV);
    await sleep(IDLE_MS);
    step(t, '1.2 s later the client is still on its connection', toVip(VIP_A, sp, TCP_ACK), XDP.PASS, dnatTo(toVip(VIP_A, sp, TCP_ACK), B1), FWD);
    await sleep(2 * IDLE_MS);
    step(t, 'idle 2.4 s (> 2 s): the reply is not translated, its entry removed', r, XDP.PASS, 'input', { PASS_NO_MATCH: 1, CT_STALE: 1 });
    setTimeouts();
  });

  t.test('a reply entry lost while the connection was idle comes back with the next forward packet', async (t) => {
    const sp = 41005;
    const ack = toVip(VIP_A, sp, TCP_ACK);
    step(t, 'loose ACK', ack, XDP.PASS, dnatTo(ack, B1), { ...FWD, CT_LOOSE: 1 });
    const rk = { saddr: B1.addr, daddr: CLIENT, sport: B1.port, dport: sp, proto: IPPROTO_TCP, dir: codecs.KP_DIR.reply };
    t.ok(dp.maps.ct.delete(rk), 'reply entry evicted');
    // Idle for 31 s (the check runs after 30): age the record rather than wait.
    const fk = fwdKey(VIP_A, sp);
    dp.maps.ct.update(fk, { ...dp.maps.ct.lookup(fk)!, lastSeenNs: process.hrtime.bigint() - 31_000_000_000n });
    step(t, 'the client speaks after 31 s idle', ack, XDP.PASS, dnatTo(ack, B1), FWD);
    t.ok(dp.maps.ct.lookup(rk), 'reply entry restored');
    const r = fromBe(B1, sp, TCP_ACK);
    step(t, 'the reply is translated', r, XDP.PASS, snatFrom(r, VIP_A), REV);
  });

  t.test('two VIPs sharing a backend, one client port: the second connection gets a remapped client port', async (t) => {
    const sp = 41006;
    const a = toVip(VIP_A, sp, TCP_SYN);
    step(t, 'SYN to VIP A', a, XDP.PASS, dnatTo(a, B1), FWD);
    const b = toVip(VIP_B, sp, TCP_SYN);
    const before = counters();
    const res = testRun(dp.progFd, buildPacket(b));
    const after = counters();
    t.equal(res.retval, XDP.PASS);
    const out = parsePacket(res.data);
    t.not(out.sport, sp, 'the backend sees another client port');
    t.ok(out.sport! >= 32768 && out.sport! <= 60999, 'from the ephemeral range');
    t.equal(res.data.toString('hex'), buildPacket(dnatTo(b, B1, out.sport)).toString('hex'), 'otherwise a plain DNAT');
    t.equal(after.CT_REMAP - before.CT_REMAP, 1n, 'counted CT_REMAP');
    t.equal(dp.maps.ct.lookup(fwdKey(VIP_B, sp))!.clientPort, out.sport);
    const ra = fromBe(B1, sp, TCP_SYN | TCP_ACK);
    step(t, "reply on the original port is VIP A's", ra, XDP.PASS, snatFrom(ra, VIP_A), REV);
    const rb = fromBe(B1, out.sport!, TCP_SYN | TCP_ACK);
    step(t, "reply on the remapped port is VIP B's, with the client's own port restored", rb, XDP.PASS, snatFrom(rb, VIP_B, sp), REV);
    const next = toVip(VIP_B, sp, TCP_ACK);
    step(t, "VIP B's next packet keeps the remapped port", next, XDP.PASS, dnatTo(next, B1, out.sport), FWD);
  });

  t.test('a direct connection on the tuple of a live NATed connection is refused; after close it works', async (t) => {
    const sp = 41007;
    const syn = toVip(VIP_A, sp, TCP_SYN);
    step(t, 'SYN to the VIP', syn, XDP.PASS, dnatTo(syn, B1), FWD);
    const direct: PacketSpec = { src: CLIENT, dst: B1.addr, proto: 'tcp', sport: sp, dport: B1.port, tcpFlags: TCP_SYN, seq: 7000 };
    step(t, 'direct SYN, same client port, to the backend', direct, XDP.DROP, 'input', { DROP_CT_CLASH: 1 });
    const rst = toVip(VIP_A, sp, TCP_RST);
    step(t, 'the VIP connection is reset', rst, XDP.PASS, dnatTo(rst, B1), FWD);
    step(t, 'now the direct SYN passes, and the leftover entry is removed', direct, XDP.PASS, 'input', { PASS_NO_MATCH: 1, CT_STALE: 1 });
    const synAck = fromBe(B1, sp, TCP_SYN | TCP_ACK, { ack: 7001 });
    step(t, "the backend's SYN-ACK to the direct connection passes untouched", synAck, XDP.PASS, 'input', { PASS_NO_MATCH: 1 });
  });

  t.test('a direct UDP flow on the tuple of an expired NATed one passes untouched', async (t) => {
    setTimeouts({ udp: 1 });
    const sp = 41008;
    const q: PacketSpec = { src: CLIENT, dst: VIP_U.addr, proto: 'udp', sport: sp, dport: VIP_U.port, payload: Buffer.from('q') };
    step(t, 'query to the VIP', q, XDP.PASS, { ...q, dst: BU.addr, dport: BU.port }, FWD);
    const direct: PacketSpec = { ...q, dst: BU.addr, dport: BU.port };
    step(t, 'direct datagram while it is live: refused', direct, XDP.DROP, 'input', { DROP_CT_CLASH: 1 });
    await sleep(IDLE_MS);
    step(t, 'after its timeout: passes, leftover removed', direct, XDP.PASS, 'input', { PASS_NO_MATCH: 1, CT_STALE: 1 });
    const a: PacketSpec = { src: BU.addr, dst: CLIENT, proto: 'udp', sport: BU.port, dport: sp, payload: Buffer.from('a') };
    step(t, 'the direct answer passes untouched', a, XDP.PASS, 'input', { PASS_NO_MATCH: 1 });
    setTimeouts();
  });

  t.test('the Maglev mirror still predicts a new connection (pad and dir are zero in forward keys)', async (t) => {
    dp.setMaglevTable(VIP_A.id, [1, 2, 1, 2, 1, 2, 1]);
    for (let sp = 42000; sp < 42016; sp++) {
      const want = [1, 2, 1, 2, 1, 2, 1][maglevSlot(flowHash(codecs.flowKey.encode(fwdKey(VIP_A, sp)), SEED), TABLE_LEN)];
      const res = testRun(dp.progFd, buildPacket(toVip(VIP_A, sp, TCP_SYN)));
      t.equal(parsePacket(res.data).dst, want === 1 ? B1.addr : B2.addr, `sport ${sp}`);
    }
  });
}
