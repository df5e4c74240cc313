// NAT66 in build/kp.bpf.o under BPF_PROG_TEST_RUN: an IPv6 frame goes from kp_xdp to kp_xdp6 by a
// tail call, and a TCP or UDP packet to an IPv6 VIP (exact or prefix) is DNATed to its IPv6 backend,
// its reply SNATed back, over the same connection table as IPv4. Output frames are compared byte for
// byte with frames built from fields by test/helpers/packet.ts, whose checksums are computed from
// scratch over RFC 8200's pseudo-header (so they check the data path's incremental updates).
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, fragments, icmp6Error, IPPROTO_ICMPV6, IPV6_DSTOPTS, IPV6_HOPOPTS, TCP_ACK, TCP_SYN, verifyChecksums, word32, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const CLIENT = '2001:db8:1::10';
const VIP = '2001:db8:10::1';
const VIP_UDP = '2001:db8:10::2';
const PFX = '2001:db8:40::'; // a /48 of VIPs
const BACKEND = '2001:db8:20::1';
const BACKEND_UDP = '2001:db8:20::2';
const BACKEND_PFX = '2001:db8:20::3';
const VIP_EMPTY = '2001:db8:10::3'; // no endpoints
const ROUTER = '2001:db8:30::fe'; // a router on the way, which sends ICMPv6 errors
const V4_CLIENT = '198.18.0.10';
const V4_BACKEND = '198.18.20.1';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('NAT66 fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 7, flags: KP_CONF_F_NO_FIB, nVipPrefixes: 1 }));
  const vips = new VipTable(dp);
  const tcp = vips.add({ prefix: `${VIP}/128`, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
  vips.addBackends(tcp, [BACKEND], 1);
  const udp = vips.add({ prefix: `${VIP_UDP}/128`, protocol: 'udp', port: 53, targetPort: 5353, newLen: 7 });
  vips.addBackends(udp, [BACKEND_UDP], 1);
  const pfx = vips.add({ prefix: `${PFX}/48`, protocol: 'tcp', port: 443, targetPort: 8443, newLen: 7 });
  vips.addBackends(pfx, [BACKEND_PFX], 1);
  vips.add({ prefix: `${VIP_EMPTY}/128`, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
  const v4 = vips.add({ prefix: '198.18.10.1/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
  vips.addBackends(v4, [V4_BACKEND], 1);

  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;
  const deltas = (names: Array<keyof typeof KP_STAT>, f: () => void): Record<string, number> => {
    const before = names.map(stat);
    f();
    return Object.fromEntries(names.map((n, i) => [n, Number(stat(n) - before[i])]));
  };
  const COUNTED: Array<keyof typeof KP_STAT> = ['DNAT', 'SNAT', 'TX_PASS', 'PASS_NO_MATCH', 'PASS_NOT_IP', 'DROP_MALFORMED'];
  const syn = (sport: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
    src: CLIENT, dst: VIP, proto: 'tcp', sport, dport: 80, tcpFlags: TCP_SYN, seq: 1000, ...extra,
  });

  /** Runs one frame; its verdict and output bytes against the expected frame (or the input). */
  const expectFrame = (t: Test, input: PacketSpec, want: PacketSpec | 'input', verdict = XDP.PASS) => {
    const r = testRun(dp.progFd, buildPacket(input));
    t.equal(r.retval, verdict, 'verdict');
    const expected = want === 'input' ? buildPacket(input) : buildPacket(want);
    t.equal(r.data.toString('hex'), expected.toString('hex'), 'output bytes');
    t.same(verifyChecksums(r.data), { ip: true, l4: true }, 'checksums verify');
    return r;
  };

  t.test('TCP SYN to an IPv6 cluster IP: DNAT to the backend and target port', async (t) => {
    const p = syn(40001);
    const d = deltas(COUNTED, () => expectFrame(t, p, { ...p, dst: BACKEND, dport: 8080 }));
    t.same(d, { DNAT: 1, SNAT: 0, TX_PASS: 1, PASS_NO_MATCH: 0, PASS_NOT_IP: 0, DROP_MALFORMED: 0 });
    t.equal(vips.list().find((v) => v.prefix === `${VIP}/128`) !== undefined, true);
  });

  t.test('its reply: SNAT back to the VIP and port, then the next forward packet takes the record', async (t) => {
    const rep: PacketSpec = { src: BACKEND, dst: CLIENT, proto: 'tcp', sport: 8080, dport: 40001, tcpFlags: TCP_SYN | TCP_ACK, seq: 5000, ack: 1001, payload: Buffer.from('reply') };
    let d = deltas(COUNTED, () => expectFrame(t, rep, { ...rep, src: VIP, sport: 80 }));
    t.same(d, { DNAT: 0, SNAT: 1, TX_PASS: 1, PASS_NO_MATCH: 0, PASS_NOT_IP: 0, DROP_MALFORMED: 0 });
    const ack = syn(40001, { tcpFlags: TCP_ACK, seq: 1001, ack: 5001, payload: Buffer.from('GET /') });
    d = deltas(COUNTED, () => expectFrame(t, ack, { ...ack, dst: BACKEND, dport: 8080 }));
    t.equal(d.DNAT, 1);
    const ct = [...dp.maps.ct.entries()].filter(([k]) => k.daddr === VIP && k.sport === 40001);
    t.equal(ct.length, 1, 'one forward record for the connection');
    t.equal(ct[0][1].state, 3, 'ESTABLISHED');
  });

  t.test('extension headers (hop-by-hop, destination options) are walked and kept', async (t) => {
    const p = syn(40002, { ext6: [IPV6_HOPOPTS, IPV6_DSTOPTS] });
    expectFrame(t, p, { ...p, dst: BACKEND, dport: 8080 });
  });

  t.test('hop limit: left to the kernel when the frame is passed', async (t) => {
    const p = syn(40003, { ttl: 7 });
    expectFrame(t, p, { ...p, dst: BACKEND, dport: 8080 });
  });

  t.test('UDP with a checksum: DNAT, checksum updated', async (t) => {
    const p: PacketSpec = { src: CLIENT, dst: VIP_UDP, proto: 'udp', sport: 33333, dport: 53, payload: Buffer.from('dns?') };
    expectFrame(t, p, { ...p, dst: BACKEND_UDP, dport: 5353 });
  });

  t.test('UDP with a checksum of 0 (illegal in IPv6): the checksum is computed', async (t) => {
    const p: PacketSpec = { src: CLIENT, dst: VIP_UDP, proto: 'udp', sport: 33334, dport: 53, payload: Buffer.from('odd'), udpNoChecksum: true };
    expectFrame(t, p, { ...p, dst: BACKEND_UDP, dport: 5353, udpNoChecksum: false });
    const rep: PacketSpec = { src: BACKEND_UDP, dst: CLIENT, proto: 'udp', sport: 5353, dport: 33334, payload: Buffer.from('answer!'), udpNoChecksum: true };
    expectFrame(t, rep, { ...rep, src: VIP_UDP, sport: 53, udpNoChecksum: false });
  });

  t.test('a VIP prefix (/48) matches an address inside it', async (t) => {
    const p = syn(40004, { dst: '2001:db8:40:0:1::9', dport: 443 });
    expectFrame(t, p, { ...p, dst: BACKEND_PFX, dport: 8443 });
  });

  t.test('a datagram longer than its frame (cut short on the way) is dropped, as a router discards it, not rewritten', async (t) => {
    const cut = buildPacket(syn(40006, { payload: Buffer.from('hello') })).subarray(0, 14 + 40 + 20 + 2);
    const d = deltas(COUNTED, () => {
      const r = testRun(dp.progFd, cut);
      t.equal(r.retval, XDP.DROP, 'verdict');
      t.equal(r.data.toString('hex'), cut.toString('hex'), 'not rewritten');
    });
    t.same(d, { DNAT: 0, SNAT: 0, TX_PASS: 0, PASS_NO_MATCH: 0, PASS_NOT_IP: 0, DROP_MALFORMED: 1 });
  });

  t.test('IPv6 not for a VIP passes untouched', async (t) => {
    const p = syn(40005, { dst: '2001:db8:99::1' });
    const d = deltas(COUNTED, () => expectFrame(t, p, 'input'));
    t.same(d, { DNAT: 0, SNAT: 0, TX_PASS: 0, PASS_NO_MATCH: 1, PASS_NOT_IP: 0, DROP_MALFORMED: 0 });
  });

  const ICMP_COUNTED: Array<keyof typeof KP_STAT> = ['REJECT', 'ICMP_XLATE', 'DROP_NO_BACKEND', 'PASS_NOT_L4', 'TX_PASS'];

  t.test('a VIP without endpoints: ICMPv6 port unreachable from the VIP, quoting the packet (kube-proxy\'s REJECT)', async (t) => {
    const p = syn(40020, { dst: VIP_EMPTY });
    const r = testRun(dp.progFd, buildPacket(p));
    t.equal(r.retval, XDP.PASS, 'to the kernel, which routes it to the client');
    t.equal(r.data.toString('hex'), icmp6Error(buildPacket(p), 1, 4).toString('hex'), 'type 1 code 4, VIP -> client');
    t.same(verifyChecksums(r.data), { ip: true, l4: true }, 'ICMPv6 checksum over the pseudo-header');
    const big = syn(40021, { dst: VIP_EMPTY, tcpFlags: TCP_ACK, payload: Buffer.alloc(1400, 0x61) });
    const r2 = testRun(dp.progFd, buildPacket(big));
    t.equal(r2.data.length, 14 + 1280, 'a long packet is quoted up to the 1280-byte minimum MTU');
    t.equal(r2.data.toString('hex'), icmp6Error(buildPacket(big), 1, 4).toString('hex'));
    const d = deltas(ICMP_COUNTED, () => {
      const ext = syn(40022, { dst: VIP_EMPTY, ext6: [IPV6_DSTOPTS] });
      t.equal(testRun(dp.progFd, buildPacket(ext)).retval, XDP.DROP, 'with extension headers (a quote kpbpf does not translate): dropped');
      testRun(dp.progFd, buildPacket(syn(40023, { dst: VIP_EMPTY })));
    });
    t.same(d, { REJECT: 1, ICMP_XLATE: 0, DROP_NO_BACKEND: 1, PASS_NOT_L4: 0, TX_PASS: 1 });
  });

  t.test('an ICMPv6 error about a DNATed packet, to the client: the quote shows the VIP, the backend\'s own address becomes the VIP', async (t) => {
    const p = syn(40030, { payload: Buffer.from('hello') });
    expectFrame(t, p, { ...p, dst: BACKEND, dport: 8080 });
    const sent = buildPacket({ ...p, dst: BACKEND, dport: 8080 });
    let d = deltas(ICMP_COUNTED, () => {
      const r = testRun(dp.progFd, icmp6Error(sent, 3, 0, Buffer.alloc(4), { src: ROUTER }));
      t.equal(r.retval, XDP.PASS);
      t.equal(r.data.toString('hex'), icmp6Error(buildPacket(p), 3, 0, Buffer.alloc(4), { src: ROUTER }).toString('hex'), 'time exceeded from a router: its source kept, the quote client -> VIP:80');
      t.same(verifyChecksums(r.data), { ip: true, l4: true });
    });
    t.same(d, { REJECT: 0, ICMP_XLATE: 1, DROP_NO_BACKEND: 0, PASS_NOT_L4: 0, TX_PASS: 1 });
    const r = testRun(dp.progFd, icmp6Error(sent, 1, 4));
    t.equal(r.data.toString('hex'), icmp6Error(buildPacket(p), 1, 4).toString('hex'), 'port unreachable from the backend: from the VIP');
    d = deltas(ICMP_COUNTED, () => {
      const other = buildPacket({ ...p, sport: 40031, dst: BACKEND, dport: 8080 });
      const e = icmp6Error(other, 3, 0, Buffer.alloc(4), { src: ROUTER });
      t.equal(testRun(dp.progFd, e).data.toString('hex'), e.toString('hex'), 'about a connection kpbpf does not know: untouched');
    });
    t.same(d, { REJECT: 0, ICMP_XLATE: 0, DROP_NO_BACKEND: 0, PASS_NOT_L4: 1, TX_PASS: 0 });
  });

  t.test('an ICMPv6 error about a SNATed reply, to the VIP: to the backend, the quote showing what the backend sent', async (t) => {
    const q: PacketSpec = { src: CLIENT, dst: VIP_UDP, proto: 'udp', sport: 33340, dport: 53, payload: Buffer.from('q') };
    expectFrame(t, q, { ...q, dst: BACKEND_UDP, dport: 5353 });
    const rep: PacketSpec = { src: BACKEND_UDP, dst: CLIENT, proto: 'udp', sport: 5353, dport: 33340, payload: Buffer.from('a long answer') };
    const snatted = { ...rep, src: VIP_UDP, sport: 53 };
    expectFrame(t, rep, snatted);
    const r = testRun(dp.progFd, icmp6Error(buildPacket(snatted), 2, 0, word32(1280), { src: ROUTER }));
    t.equal(r.retval, XDP.PASS);
    t.equal(r.data.toString('hex'), icmp6Error(buildPacket(rep), 2, 0, word32(1280), { src: ROUTER, dst: BACKEND_UDP }).toString('hex'),
      'packet too big: to the backend, quoting backend:5353 -> client with its UDP checksum updated');
    t.same(verifyChecksums(r.data), { ip: true, l4: true });
  });

  t.test('IPv6 fragments: the first is DNATed as a packet, a later one follows it to the same backend and back', async (t) => {
    const FRAG_COUNTED: Array<keyof typeof KP_STAT> = ['DNAT', 'SNAT', 'FRAG_XLATE', 'DROP_FRAG', 'PASS_FRAGMENT'];
    const q: PacketSpec = { src: CLIENT, dst: VIP_UDP, proto: 'udp', sport: 33350, dport: 53, payload: Buffer.alloc(64, 0x71), id: 0x5150 };
    const [f1, f2] = fragments(q, 16);
    const [w1, w2] = fragments({ ...q, dst: BACKEND_UDP, dport: 5353 }, 16);
    let d = deltas(FRAG_COUNTED, () => {
      const r1 = testRun(dp.progFd, f1);
      t.equal(r1.data.toString('hex'), w1.toString('hex'), 'first fragment: DNAT, the checksum of the whole datagram updated');
      const r2 = testRun(dp.progFd, f2);
      t.equal(r2.retval, XDP.PASS);
      t.equal(r2.data.toString('hex'), w2.toString('hex'), 'later fragment: its addresses only');
    });
    t.same(d, { DNAT: 1, SNAT: 0, FRAG_XLATE: 1, DROP_FRAG: 0, PASS_FRAGMENT: 0 });
    const rep: PacketSpec = { src: BACKEND_UDP, dst: CLIENT, proto: 'udp', sport: 5353, dport: 33350, payload: Buffer.alloc(40, 0x72), id: 0x6160 };
    const [g1, g2] = fragments(rep, 24);
    const [v1, v2] = fragments({ ...rep, src: VIP_UDP, sport: 53 }, 24);
    d = deltas(FRAG_COUNTED, () => {
      t.equal(testRun(dp.progFd, g1).data.toString('hex'), v1.toString('hex'), 'reply, first fragment: SNAT');
      t.equal(testRun(dp.progFd, g2).data.toString('hex'), v2.toString('hex'), 'reply, later fragment: from the VIP');
    });
    t.same(d, { DNAT: 0, SNAT: 1, FRAG_XLATE: 1, DROP_FRAG: 0, PASS_FRAGMENT: 0 });
    d = deltas(FRAG_COUNTED, () => {
      const [, orphan] = fragments({ ...q, sport: 33351, id: 0x7170 }, 16);
      t.equal(testRun(dp.progFd, orphan).retval, XDP.DROP, 'a later fragment to a VIP whose first was never seen: dropped');
      const [, transit] = fragments({ ...q, dst: '2001:db8:99::1', id: 0x7171 }, 16);
      t.equal(testRun(dp.progFd, transit).data.toString('hex'), transit.toString('hex'), 'transit: untouched');
    });
    t.same(d, { DNAT: 0, SNAT: 0, FRAG_XLATE: 0, DROP_FRAG: 1, PASS_FRAGMENT: 1 });
  });

  t.test('neighbour discovery and echo pass untouched', async (t) => {
    const ns: PacketSpec = { src: CLIENT, dst: 'ff02::1:ff00:1', proto: IPPROTO_ICMPV6, payload: Buffer.from('870000000000000020010db8002000000000000000000001', 'hex'), ttl: 255 };
    const echo: PacketSpec = { src: CLIENT, dst: VIP, proto: IPPROTO_ICMPV6, payload: Buffer.from('80000000abcd0001', 'hex') };
    const d = deltas(ICMP_COUNTED, () => {
      for (const p of [ns, echo]) t.equal(testRun(dp.progFd, buildPacket(p)).data.toString('hex'), buildPacket(p).toString('hex'));
    });
    t.same(d, { REJECT: 0, ICMP_XLATE: 0, DROP_NO_BACKEND: 0, PASS_NOT_L4: 2, TX_PASS: 0 });
  });

  t.test('IPv4 beside it is unchanged', async (t) => {
    const p: PacketSpec = { src: V4_CLIENT, dst: '198.18.10.1', proto: 'tcp', sport: 40006, dport: 80, tcpFlags: TCP_SYN };
    expectFrame(t, p, { ...p, dst: V4_BACKEND, dport: 8080 });
  });
}
