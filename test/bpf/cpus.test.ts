// Connections across CPUs: RSS and NAPI move a connection's packets between CPUs, and its replies
// arrive on any CPU. kp_ct is one shared table, so every CPU finds and updates the same record
// rather than re-selecting through Maglev. XDP's BPF_PROG_TEST_RUN runs on the calling CPU, so
// each packet is sent after pinning this thread to a chosen CPU.
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import * as codecs from '../../src/maps/codecs.js';
import { addRecords } from '../../src/maps/map.js';
import { buildPacket, IPPROTO_TCP, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, pinToCpu, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const SEED = 0x5eed1234;
const TABLE_LEN = 7;
const CLIENT = '198.18.0.10';
const VIP = { id: 1, addr: '198.18.10.1', port: 80 };
const BACKENDS = [
  { id: 1, addr: '198.18.20.1', port: 8080 },
  { id: 2, addr: '198.18.20.2', port: 8080 },
];

function skipReason(): string | undefined {
  return bpfSkipReason() ?? (pinToCpu(1) ? undefined : 'needs a second online CPU (CPU 1) to move a flow between CPUs');
}

const syn = (sport: number): PacketSpec => ({ src: CLIENT, dst: VIP.addr, proto: 'tcp', sport, dport: VIP.port, tcpFlags: TCP_SYN, seq: 1000 });
const ack = (sport: number): PacketSpec => ({ ...syn(sport), tcpFlags: TCP_ACK, seq: 1001, ack: 5001, payload: Buffer.from('data') });
const keyOf = (sport: number): codecs.FlowKey => ({ saddr: CLIENT, daddr: VIP.addr, sport, dport: VIP.port, proto: IPPROTO_TCP });

function setup(dp: Dataplane): void {
  dp.maps.config.update(0, testConfig({ hashSeed: SEED, flags: KP_CONF_F_NO_FIB }));
  dp.maps.vips.update({ addr: VIP.addr, port: VIP.port, proto: IPPROTO_TCP }, { id: VIP.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  for (const b of BACKENDS) setGen(dp, b.id, 1);
}

function setGen(dp: Dataplane, id: number, gen: number): void {
  const b = BACKENDS[id - 1];
  dp.maps.backends.update(b.id, { addr: b.addr, port: b.port, state: BACKEND_STATE.active, gen, vipId: VIP.id, weight: 1 });
}

interface Sent {
  backend: string;
  first: bigint;
  existing: bigint;
}

/** Sends one packet on `cpu`; returns where it went and the per-VIP counter deltas. */
function sendOn(t: Test, dp: Dataplane, cpu: number, p: PacketSpec): Sent {
  t.ok(pinToCpu(cpu), `running on CPU ${cpu}`);
  const before = dp.maps.vipStats.sum(VIP.id, addRecords)!;
  const res = testRun(dp.progFd, buildPacket(p));
  const after = dp.maps.vipStats.sum(VIP.id, addRecords)!;
  t.equal(res.retval, XDP.PASS, 'verdict XDP_PASS');
  t.same(verifyChecksums(res.data), { ip: true, l4: true }, 'checksums valid after DNAT');
  return { backend: parsePacket(res.data).dst, first: after.firstPkts - before.firstPkts, existing: after.existingPkts - before.existingPkts };
}

const reply = (sport: number, b: (typeof BACKENDS)[number], flags: number): PacketSpec => ({
  src: b.addr,
  dst: CLIENT,
  proto: 'tcp',
  sport: b.port,
  dport: sport,
  tcpFlags: flags,
  seq: 5000,
  ack: 1001,
});
const stateOf = (dp: Dataplane, sport: number) => codecs.CT_STATES[dp.maps.ct.lookup(keyOf(sport))!.state];

const reason = skipUnlessCi(skipReason());
if (reason) {
  t.skip(`connections across CPUs: ${reason}`, async () => {});
} else {
  const dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  const toward1 = [1, 1, 1, 1, 1, 1, 1];
  const toward2 = [2, 2, 2, 2, 2, 2, 2];

  t.test('a connection moved from CPU 0 to CPU 1 keeps its backend after the Maglev table changed', async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40001;
    const a = sendOn(t, dp, 0, syn(sport));
    t.match(a, { backend: BACKENDS[0].addr, first: 1n, existing: 0n }, 'first packet on CPU 0 goes to backend 1');
    dp.setMaglevTable(VIP.id, toward2); // Maglev alone would now pick backend 2
    const b = sendOn(t, dp, 1, ack(sport));
    t.match(b, { backend: BACKENDS[0].addr, first: 0n, existing: 1n }, 'next packet on CPU 1 stays on backend 1, counted existing');
    t.equal(dp.maps.ct.lookup(keyOf(sport))!.backendId, 1, 'one record, on backend 1');
  });

  t.test('both directions on different CPUs move one record through the TCP handshake', async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40004;
    sendOn(t, dp, 0, syn(sport));
    t.equal(stateOf(dp, sport), 'syn_sent');
    t.ok(pinToCpu(1));
    const r = testRun(dp.progFd, buildPacket(reply(sport, BACKENDS[0], TCP_SYN | TCP_ACK)));
    t.equal(parsePacket(r.data).src, VIP.addr, 'the SYN-ACK on CPU 1 is SNATed to the VIP');
    t.equal(stateOf(dp, sport), 'syn_recv', 'and moved the record CPU 0 created');
    sendOn(t, dp, 0, ack(sport));
    t.equal(stateOf(dp, sport), 'established', "the client's ACK on CPU 0 completes the handshake");
  });

  t.test("each CPU counts in its own slice of the counter arrays, which add up to the VIP's and backend's totals", async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    dp.maps.vipStats.zero([VIP.id]);
    dp.maps.beStats.zero([BACKENDS[0].id]);
    const sport = 40005;
    sendOn(t, dp, 0, syn(sport));
    sendOn(t, dp, 1, ack(sport));
    sendOn(t, dp, 1, ack(sport));
    const vip = dp.maps.vipStats.lookup(VIP.id);
    t.match([vip[0].firstPkts, vip[0].existingPkts, vip[1].firstPkts, vip[1].existingPkts], [1n, 0n, 0n, 2n], "the SYN in CPU 0's slice, both ACKs in CPU 1's");
    const be = dp.maps.beStats.lookup(BACKENDS[0].id);
    t.match([be[0].packets, be[1].packets], [1n, 2n], "the backend's packets likewise");
    const ackBytes = BigInt(buildPacket(ack(sport)).length);
    t.equal(be[1].bytes, 2n * ackBytes, 'and their bytes');
    t.same([...dp.maps.beStats.sumCounters([BACKENDS[0].id]).get(BACKENDS[0].id)!], [3, Number(be[0].bytes + be[1].bytes)], 'summed over the CPUs');
    for (let c = 2; c < vip.length; c++) t.equal(vip[c].firstPkts + vip[c].existingPkts, 0n, `CPU ${c}: nothing`);
  });

  t.test('a connection whose backend was flushed (gen bump) re-selects on the other CPU', async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40002;
    t.match(sendOn(t, dp, 0, syn(sport)), { backend: BACKENDS[0].addr, first: 1n });
    setGen(dp, 1, 2);
    dp.setMaglevTable(VIP.id, toward2);
    t.match(sendOn(t, dp, 1, ack(sport)), { backend: BACKENDS[1].addr, first: 1n, existing: 0n }, 'flushed backend not kept');
    setGen(dp, 1, 1);
  });
}
