// IPv4 fragments under BPF_PROG_TEST_RUN: the first fragment of a datagram to a VIP is DNATed like
// a packet (its UDP checksum covers the whole datagram), the later ones follow it to the same
// backend with only their addresses rewritten; a backend's fragmented reply is SNATed the same way.
// A later fragment whose first is unknown is dropped when it is kpbpf's, passed when it is transit.
// Expected frames are the fragments of the translated datagram, built from scratch.
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { ADDR_FLAG } from '../../src/maps/codecs.js';
import { addU64 } from '../../src/maps/map.js';
import { fragments, IPPROTO_UDP, parsePacket, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, pinToCpu, testConfig, XDP, type KpStatName } from '../helpers/bpf.js';

const CLIENT = '198.18.0.10';
const VIP = { id: 1, addr: '198.18.10.3', port: 53 };
const BE = { id: 1, addr: '198.18.20.3', port: 5353 };
const FIRST = 1480 - 8; // as a 1500-byte MTU splits a UDP datagram: 1480 bytes of IP payload

const COUNTED = ['DNAT', 'SNAT', 'FRAG_XLATE', 'DROP_FRAG', 'PASS_FRAGMENT', 'TX_PASS'] as const satisfies readonly KpStatName[];
type Counted = (typeof COUNTED)[number];

let dp: Dataplane;
const counters = () => Object.fromEntries(COUNTED.map((n) => [n, dp.maps.stats.sum(KP_STAT[n], addU64) ?? 0n])) as Record<Counted, bigint>;

function send(t: Test, what: string, input: Buffer, verdict: number, output: Buffer | 'input', stats: Partial<Record<Counted, number>>): void {
  const before = counters();
  const res = testRun(dp.progFd, input);
  const after = counters();
  t.equal(res.retval, verdict, `${what}: verdict`);
  t.equal(res.data.toString('hex'), (output === 'input' ? input : output).toString('hex'), `${what}: output bytes`);
  if (output !== 'input') t.ok(verifyChecksums(res.data).ip, `${what}: IP checksum from scratch`);
  for (const n of COUNTED) t.equal(after[n] - before[n], BigInt(stats[n] ?? 0), `${what}: ${n} delta`);
}

/** A large UDP datagram, client -> VIP, with a recognisable payload. */
const query = (sport: number, id: number): PacketSpec => ({
  src: CLIENT,
  dst: VIP.addr,
  proto: 'udp',
  sport,
  dport: VIP.port,
  id,
  payload: Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7 + sport) & 255)),
});
const atBackend = (q: PacketSpec): PacketSpec => ({ ...q, dst: BE.addr, dport: BE.port });
const FWD = { DNAT: 1, TX_PASS: 1 };
const LATER = { FRAG_XLATE: 1, TX_PASS: 1 };

const reason = bpfSkipReason();
if (reason) {
  t.skip(`fragment fixtures: ${reason}`, async () => {});
} else {
  if (!pinToCpu(0)) throw new Error('sched_setaffinity(CPU 0) failed');
  dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ flags: KP_CONF_F_NO_FIB }));
  dp.maps.vips.update({ addr: VIP.addr, port: VIP.port, proto: IPPROTO_UDP }, { id: VIP.id, tableLen: 7, flags: 0, targetPort: 0 });
  dp.maps.backends.update(BE.id, { ...BE, state: BACKEND_STATE.active, gen: 1, vipId: VIP.id, weight: 1 });
  dp.setMaglevTable(VIP.id, Array(7).fill(BE.id));
  // As the control plane writes them: the VIP's and the backend's addresses.
  dp.maps.addrs.update(VIP.addr, ADDR_FLAG.vip);
  dp.maps.addrs.update(BE.addr, ADDR_FLAG.backend);

  t.test('in order: the first fragment is DNATed with the datagram checksum, the second follows it', async (t) => {
    const q = query(41000, 0x1001);
    const [f1, f2] = fragments(q, FIRST);
    const [w1, w2] = fragments(atBackend(q), FIRST);
    send(t, 'first fragment', f1, XDP.PASS, w1, FWD);
    send(t, 'second fragment', f2, XDP.PASS, w2, LATER);
  });

  t.test("the backend's fragmented answer is SNATed, both fragments", async (t) => {
    const a: PacketSpec = { src: BE.addr, dst: CLIENT, proto: 'udp', sport: BE.port, dport: 41000, id: 0x2001, payload: Buffer.alloc(1800, 0x5a) };
    const [f1, f2] = fragments(a, FIRST);
    const [w1, w2] = fragments({ ...a, src: VIP.addr, sport: VIP.port }, FIRST);
    send(t, 'first fragment', f1, XDP.PASS, w1, { SNAT: 1, TX_PASS: 1 });
    send(t, 'second fragment', f2, XDP.PASS, w2, LATER);
  });

  t.test('out of order: a later fragment before its first is dropped and counted, not sent untranslated', async (t) => {
    const q = query(41001, 0x1002);
    const [f1, f2] = fragments(q, FIRST);
    const [w1, w2] = fragments(atBackend(q), FIRST);
    send(t, 'second fragment first', f2, XDP.DROP, 'input', { DROP_FRAG: 1 });
    send(t, 'then the first', f1, XDP.PASS, w1, FWD);
    send(t, 'the second again (a retransmission)', f2, XDP.PASS, w2, LATER);
  });

  t.test("a later fragment from a backend whose first is unknown is dropped too", async (t) => {
    const a: PacketSpec = { src: BE.addr, dst: CLIENT, proto: 'udp', sport: BE.port, dport: 41002, id: 0x2002, payload: Buffer.alloc(1800, 0x5b) };
    send(t, 'second fragment', fragments(a, FIRST)[1], XDP.DROP, 'input', { DROP_FRAG: 1 });
  });

  t.test('transit fragments pass untouched, in any order', async (t) => {
    const x: PacketSpec = { src: CLIENT, dst: '198.18.40.1', proto: 'udp', sport: 1000, dport: 2000, id: 0x3001, payload: Buffer.alloc(1800, 0x11) };
    const [f1, f2] = fragments(x, FIRST);
    send(t, 'later fragment first', f2, XDP.PASS, 'input', { PASS_FRAGMENT: 1 });
    const before = counters();
    const r = testRun(dp.progFd, f1);
    t.equal(r.retval, XDP.PASS);
    t.equal(r.data.toString('hex'), f1.toString('hex'), 'first fragment untouched');
    t.equal(counters().DNAT - before.DNAT, 0n);
    send(t, 'later fragment after it', f2, XDP.PASS, 'input', { PASS_FRAGMENT: 1 });
  });

  t.test('a datagram to a VIP with its fragments the other way round keeps one backend', async (t) => {
    const q = query(41003, 0x1003);
    const [f1] = fragments(q, FIRST);
    t.equal(parsePacket(testRun(dp.progFd, f1).data).dst, BE.addr);
    t.ok(dp.maps.frags.lookup({ saddr: CLIENT, daddr: VIP.addr, id: 0x1003, proto: IPPROTO_UDP }), 'the first fragment left its ports under (src, dst, id, protocol)');
  });
}
