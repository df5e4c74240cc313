// ICMP errors about NATed connections under BPF_PROG_TEST_RUN, translated both ways as conntrack
// does: toward the client (an error about a DNATed packet quotes the backend; it must quote the VIP)
// and toward the backend (an error about a SNATed reply quotes the VIP; it must quote the backend).
// Expected frames are built from the untranslated packets with checksums from scratch, and the
// ICMP and quoted IP checksums are verified by an independent routine.
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { buildPacket, icmpError, IPPROTO_TCP, IPPROTO_UDP, parsePacket, TCP_ACK, TCP_SYN, verifyIcmp, type PacketSpec } from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, pinToCpu, testConfig, XDP, type KpStatName } from '../helpers/bpf.js';

const CLIENT = '198.18.0.10';
const ROUTER = '198.18.30.1';
const VIP_T = { id: 1, addr: '198.18.10.1', port: 80 };
const VIP_T2 = { id: 2, addr: '198.18.10.2', port: 80 }; // shares the TCP backend: a remapped client port
const VIP_U = { id: 3, addr: '198.18.10.3', port: 53 };
const BT = { id: 1, addr: '198.18.20.1', port: 8080 };
const BU = { id: 2, addr: '198.18.20.2', port: 5353 };
const DEST_UNREACH = 3;
const TIME_EXCEEDED = 11;
const PARAM_PROBLEM = 12;

const COUNTED = ['ICMP_XLATE', 'PASS_NOT_L4', 'TX_PASS', 'DNAT', 'SNAT', 'CT_REMAP', 'DROP_MALFORMED'] as const satisfies readonly KpStatName[];
type Counted = (typeof COUNTED)[number];

let dp: Dataplane;
const counters = () => Object.fromEntries(COUNTED.map((n) => [n, dp.maps.stats.sum(KP_STAT[n], addU64) ?? 0n])) as Record<Counted, bigint>;

function send(t: Test, what: string, input: Buffer, output: Buffer | 'input', stats: Partial<Record<Counted, number>>, verdict: number = XDP.PASS): Buffer {
  const before = counters();
  const res = testRun(dp.progFd, input);
  const after = counters();
  t.equal(res.retval, verdict, `${what}: verdict`);
  t.equal(res.data.toString('hex'), (output === 'input' ? input : output).toString('hex'), `${what}: output bytes`);
  if (output !== 'input') t.same(verifyIcmp(res.data), { icmp: true, quotedIp: true }, `${what}: ICMP and quoted IP checksums`);
  for (const n of COUNTED) t.equal(after[n] - before[n], BigInt(stats[n] ?? 0), `${what}: ${n} delta`);
  return res.data;
}

const udpQuery = (sport: number): PacketSpec => ({ src: CLIENT, dst: VIP_U.addr, proto: 'udp', sport, dport: VIP_U.port, payload: Buffer.from('query') });
const tcpSyn = (vip: typeof VIP_T, sport: number): PacketSpec => ({ src: CLIENT, dst: vip.addr, proto: 'tcp', sport, dport: vip.port, tcpFlags: TCP_SYN, seq: 1000 });

const reason = bpfSkipReason();
if (reason) {
  t.skip(`ICMP translation fixtures: ${reason}`, async () => {});
} else {
  if (!pinToCpu(0)) throw new Error('sched_setaffinity(CPU 0) failed');
  dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ flags: KP_CONF_F_NO_FIB }));
  for (const v of [VIP_T, VIP_T2]) dp.maps.vips.update({ addr: v.addr, port: v.port, proto: IPPROTO_TCP }, { id: v.id, tableLen: 7, flags: 0, targetPort: 0 });
  dp.maps.vips.update({ addr: VIP_U.addr, port: VIP_U.port, proto: IPPROTO_UDP }, { id: VIP_U.id, tableLen: 7, flags: 0, targetPort: 0 });
  dp.maps.backends.update(BT.id, { ...BT, state: BACKEND_STATE.active, gen: 1, vipId: VIP_T.id, weight: 1 });
  dp.maps.backends.update(BU.id, { ...BU, state: BACKEND_STATE.active, gen: 1, vipId: VIP_U.id, weight: 1 });
  for (const v of [VIP_T, VIP_T2]) dp.setMaglevTable(v.id, Array(7).fill(BT.id));
  dp.setMaglevTable(VIP_U.id, Array(7).fill(BU.id));

  t.test("the backend's port unreachable about a UDP query reaches the client quoting the VIP", async (t) => {
    const q = udpQuery(41000);
    const out = parsePacket(testRun(dp.progFd, buildPacket(q)).data);
    t.equal(out.dst, BU.addr, 'the query was DNATed');
    const atBackend = buildPacket({ ...q, dst: BU.addr, dport: BU.port });
    send(t, 'port unreachable', icmpError(atBackend, DEST_UNREACH, 3), icmpError(buildPacket(q), DEST_UNREACH, 3), { ICMP_XLATE: 1, TX_PASS: 1 });
  });

  t.test("a router's time exceeded about a TCP SYN keeps the router's address, quotes the VIP", async (t) => {
    const syn = tcpSyn(VIP_T, 41001);
    testRun(dp.progFd, buildPacket(syn));
    const atRouter = buildPacket({ ...syn, dst: BT.addr, dport: BT.port });
    send(t, 'time exceeded', icmpError(atRouter, TIME_EXCEEDED, 0, undefined, { src: ROUTER }), icmpError(buildPacket(syn), TIME_EXCEEDED, 0, undefined, { src: ROUTER }), {
      ICMP_XLATE: 1,
      TX_PASS: 1,
    });
  });

  t.test("an error about a connection whose client port was remapped quotes the client's own port", async (t) => {
    const sport = 41002;
    testRun(dp.progFd, buildPacket(tcpSyn(VIP_T, sport)));
    const second = tcpSyn(VIP_T2, sport);
    const sent = parsePacket(testRun(dp.progFd, buildPacket(second)).data);
    t.not(sent.sport, sport, 'the second connection was remapped');
    const atBackend = buildPacket({ ...second, dst: BT.addr, dport: BT.port, sport: sent.sport });
    send(t, 'parameter problem', icmpError(atBackend, PARAM_PROBLEM, 0), icmpError(buildPacket(second), PARAM_PROBLEM, 0), { ICMP_XLATE: 1, TX_PASS: 1 });
  });

  t.test("the client's port unreachable about a UDP answer reaches the backend quoting the backend", async (t) => {
    const q = udpQuery(41003);
    testRun(dp.progFd, buildPacket(q));
    const answer: PacketSpec = { src: BU.addr, dst: CLIENT, proto: 'udp', sport: BU.port, dport: q.sport, payload: Buffer.from('answer') };
    const atClient = buildPacket({ ...answer, src: VIP_U.addr, sport: VIP_U.port });
    send(t, 'port unreachable', icmpError(atClient, DEST_UNREACH, 3), icmpError(buildPacket(answer), DEST_UNREACH, 3), { ICMP_XLATE: 1, TX_PASS: 1 });
  });

  t.test("a router's time exceeded and a parameter problem about a TCP reply reach the backend quoting the backend", async (t) => {
    const sport = 41006;
    testRun(dp.progFd, buildPacket(tcpSyn(VIP_T, sport)));
    const synAck: PacketSpec = { src: BT.addr, dst: CLIENT, proto: 'tcp', sport: BT.port, dport: sport, tcpFlags: TCP_SYN | TCP_ACK, seq: 5000, ack: 1001 };
    const atRouter = buildPacket({ ...synAck, src: VIP_T.addr, sport: VIP_T.port });
    for (const [type, code] of [[TIME_EXCEEDED, 0], [PARAM_PROBLEM, 0]]) {
      const input = icmpError(atRouter, type, code, undefined, { src: ROUTER });
      // The outer destination was the VIP (the quote's source); it becomes the backend.
      const want = icmpError(buildPacket(synAck), type, code, undefined, { src: ROUTER });
      send(t, `type ${type}`, input, want, { ICMP_XLATE: 1, TX_PASS: 1 });
    }
  });

  t.test('a UDP quote without a checksum keeps 0', async (t) => {
    const q = { ...udpQuery(41004), udpNoChecksum: true };
    testRun(dp.progFd, buildPacket(q));
    const atBackend = buildPacket({ ...q, dst: BU.addr, dport: BU.port });
    send(t, 'port unreachable', icmpError(atBackend, DEST_UNREACH, 3), icmpError(buildPacket(q), DEST_UNREACH, 3), { ICMP_XLATE: 1, TX_PASS: 1 });
  });

  t.test('errors about no NATed connection, and ICMP that is not an error, pass untouched', async (t) => {
    const stranger = buildPacket({ src: CLIENT, dst: '198.18.40.1', proto: 'tcp', sport: 1, dport: 2, tcpFlags: TCP_ACK });
    send(t, 'unrelated error', icmpError(stranger, DEST_UNREACH, 1), 'input', { PASS_NOT_L4: 1 });
    const echo = buildPacket({ src: CLIENT, dst: VIP_T.addr, proto: 1, payload: Buffer.from('0800f7ff00000000', 'hex') });
    send(t, 'echo request to a VIP', echo, 'input', { PASS_NOT_L4: 1 });
    const short = icmpError(buildPacket(udpQuery(41005)), DEST_UNREACH, 3, undefined, {}, 4);
    send(t, 'an error quoting fewer than 8 bytes', short, 'input', { PASS_NOT_L4: 1 });
    const cut = icmpError(buildPacket(udpQuery(41005)), DEST_UNREACH, 3).subarray(0, 14 + 20 + 8 + 20 + 4);
    send(t, 'an error cut short on the way (its datagram longer than the frame): discarded, as a router does', cut, 'input', { DROP_MALFORMED: 1 }, XDP.DROP);
  });
}
