// NAT46 and NAT64 in build/kp.bpf.o under BPF_PROG_TEST_RUN: a connection whose VIP and backends are
// of different families. Forward packets are translated by the client family's program (kp_xdp for
// NAT46, kp_xdp6 for NAT64), replies by the backend family's, and every output frame must equal the
// frame test/helpers/packet.ts builds from fields for the other family, with checksums it computes
// from scratch (so the translation's incremental and recomputed checksums are checked independently).
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { MASQ_NAT46, MASQ_V4 } from '../../src/maps/codecs.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { buildPacket, fragments, icmp6Error, icmpError, inetChecksum, mtuWord, parsePacket, TCP_ACK, TCP_SYN, v6ToBytes, verifyChecksums, verifyIcmp, word32, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const NODE4 = '198.18.0.1'; // the masquerade address: NAT64's source
const CLIENT4 = '198.18.0.10';
const VIP46 = '198.18.46.1';
const VIP46_UDP = '198.18.46.2';
const BACKEND6 = '2001:db8:46::10';
const BACKEND6_UDP = '2001:db8:46::11';
const PREFIX46 = '2001:db8:ff46::'; // the NAT46 prefix set below (a /96)
const CLIENT6 = '2001:db8:1::10';
const VIP64 = '2001:db8:64::1';
const VIP64_UDP = '2001:db8:64::2';
const BACKEND4 = '198.18.64.10';
const BACKEND4_UDP = '198.18.64.11';
const NODE6 = '2001:db8::1';
const NP46 = 30946;
const NP64 = 30964;
const LB46 = '198.18.47.1'; // a NAT46 LoadBalancer IP
const EXT64 = '2001:db8:65::1'; // a NAT64 external IP
const TCP = 6;
const UDP = 17;

/** a.b.c.d embedded in a /96 prefix (RFC 6052). */
const embed = (prefix: string, v4: string) => {
  const [a, b, c, d] = v4.split('.').map(Number);
  return `${prefix}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
};

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('NAT46/NAT64 fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 9, flags: KP_CONF_F_NO_FIB }));
  dp.maps.masq.update(MASQ_V4, { addr: NODE4, portMin: 20000, portMax: 20999 });
  const vips = new VipTable(dp, () => [NODE4, NODE6]);
  const add = (vip: string, proto: 'tcp' | 'udp', port: number, target: number, backend: string, encap: 'nat46' | 'nat64') => {
    const v = vips.add({ prefix: `${vip}/${vip.includes(':') ? 128 : 32}`, protocol: proto, port, targetPort: target, newLen: 7, encap });
    vips.addBackends(v, [backend], 1);
    return v;
  };
  add(VIP46, 'tcp', 80, 8080, BACKEND6, 'nat46');
  add(VIP46_UDP, 'udp', 53, 5353, BACKEND6_UDP, 'nat46');
  add(VIP64, 'tcp', 80, 8080, BACKEND4, 'nat64');
  add(VIP64_UDP, 'udp', 53, 5353, BACKEND4_UDP, 'nat64');
  // Every service type across families: node ports on the node address of the VIP's family, a
  // LoadBalancer IP (with source ranges) and an external IP.
  vips.addBackends(vips.add({ prefix: '198.18.46.3/32', protocol: 'udp', port: 53, targetPort: 5353, newLen: 7, nodePort: NP46, encap: 'nat46' }), [BACKEND6_UDP], 1, { local: true });
  vips.addBackends(vips.add({ prefix: '2001:db8:64::3/128', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7, nodePort: NP64, encap: 'nat64' }), [BACKEND4], 1, { local: true });
  vips.addBackends(vips.add({ prefix: `${LB46}/32`, protocol: 'tcp', port: 443, targetPort: 8443, newLen: 7, type: 'loadbalancer', sourceRanges: ['198.18.0.0/24'], encap: 'nat46' }), [BACKEND6], 1);
  vips.addBackends(vips.add({ prefix: `${EXT64}/128`, protocol: 'udp', port: 8053, targetPort: 5353, newLen: 7, type: 'externalip', encap: 'nat64' }), [BACKEND4_UDP], 1);

  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;
  const deltas = (names: Array<keyof typeof KP_STAT>, f: () => void): Record<string, number> => {
    const before = names.map(stat);
    f();
    return Object.fromEntries(names.map((n, i) => [n, Number(stat(n) - before[i])]));
  };
  const COUNTED: Array<keyof typeof KP_STAT> = ['XLATE', 'DNAT', 'SNAT', 'MASQ', 'TX_PASS', 'DROP_XLATE', 'DROP_MALFORMED'];
  const expectFrame = (t: Test, input: PacketSpec, want: PacketSpec, verdict = XDP.PASS) => {
    const r = testRun(dp.progFd, buildPacket(input));
    t.equal(r.retval, verdict, 'verdict');
    t.equal(r.data.toString('hex'), buildPacket(want).toString('hex'), 'output bytes');
    t.same(verifyChecksums(r.data), { ip: true, l4: true }, 'checksums verify');
    return r;
  };
  /** The source port the backend sees: the forward record's. */
  const natPort = (client: string, vip: string, sport: number, dport: number, proto: number) => {
    const rec = dp.maps.ct.lookup({ saddr: client, daddr: vip, sport, dport, proto });
    if (!rec) throw new Error(`no forward record for ${client}:${sport} -> ${vip}:${dport}`);
    return rec.clientPort;
  };
  // What RFC 7915 puts in an IPv4 header it builds: identification 0, DF.
  const v4out = { id: 0, df: true };

  t.test('NAT46 TCP: the SYN becomes IPv6 from the client embedded in the default prefix', async (t) => {
    const syn: PacketSpec = { src: CLIENT4, dst: VIP46, proto: 'tcp', sport: 40001, dport: 80, tcpFlags: TCP_SYN, seq: 1000, tos: 0x28, ttl: 60 };
    const out = testRun(dp.progFd, buildPacket(syn));
    const port = natPort(CLIENT4, VIP46, 40001, 80, TCP);
    t.ok(port >= 20000 && port <= 20999, `a masquerade port (${port})`);
    t.equal(out.data.toString('hex'), buildPacket({ ...syn, src: embed('64:ff9b::', CLIENT4), dst: BACKEND6, sport: port, dport: 8080 }).toString('hex'), '64:ff9b::/96 when no prefix is set');
    const rec = dp.maps.ct.lookup({ saddr: CLIENT4, daddr: VIP46, sport: 40001, dport: 80, proto: TCP })!;
    t.ok(rec.flags & 0x80 && rec.flags & 0x40, 'the record is flagged XLATE and MASQ');
  });

  t.test('NAT46 with a configured prefix, and its reply back to IPv4', async (t) => {
    dp.maps.masq.update(MASQ_NAT46, { addr: PREFIX46, portMin: 0, portMax: 0 });
    const src6 = embed(PREFIX46, CLIENT4);
    const syn: PacketSpec = { src: CLIENT4, dst: VIP46, proto: 'tcp', sport: 40002, dport: 80, tcpFlags: TCP_SYN, seq: 1000, tos: 0x28, ttl: 60, payload: Buffer.from('hello') };
    let port = 0;
    let d = deltas(COUNTED, () => {
      const out = testRun(dp.progFd, buildPacket(syn));
      port = natPort(CLIENT4, VIP46, 40002, 80, TCP);
      t.equal(out.retval, XDP.PASS);
      t.equal(out.data.toString('hex'), buildPacket({ ...syn, src: src6, dst: BACKEND6, sport: port, dport: 8080 }).toString('hex'), 'the configured /96');
    });
    t.same(d, { XLATE: 1, DNAT: 1, SNAT: 0, MASQ: 1, TX_PASS: 1, DROP_XLATE: 0, DROP_MALFORMED: 0 });
    const rep: PacketSpec = { src: BACKEND6, dst: src6, proto: 'tcp', sport: 8080, dport: port, tcpFlags: TCP_SYN | TCP_ACK, seq: 5000, ack: 1006, tos: 0x10, ttl: 63, payload: Buffer.from('welcome') };
    d = deltas(COUNTED, () => expectFrame(t, rep, { ...rep, ...v4out, src: VIP46, dst: CLIENT4, sport: 80, dport: 40002 }));
    t.same(d, { XLATE: 1, DNAT: 0, SNAT: 1, MASQ: 0, TX_PASS: 1, DROP_XLATE: 0, DROP_MALFORMED: 0 });
    const ack: PacketSpec = { ...syn, tcpFlags: TCP_ACK, seq: 1006, ack: 5008, payload: Buffer.from('GET /') };
    d = deltas(COUNTED, () => expectFrame(t, ack, { ...ack, src: src6, dst: BACKEND6, sport: port, dport: 8080 }));
    t.same(d, { XLATE: 1, DNAT: 1, SNAT: 0, MASQ: 0, TX_PASS: 1, DROP_XLATE: 0, DROP_MALFORMED: 0 }, 'the record takes it: no new masquerade');
    const rec = dp.maps.ct.lookup({ saddr: CLIENT4, daddr: VIP46, sport: 40002, dport: 80, proto: TCP })!;
    t.equal(rec.state, 3, 'ESTABLISHED');
    const fast: PacketSpec = { ...rep, tcpFlags: TCP_ACK, seq: 5008, ack: 1011, payload: Buffer.from('data') };
    expectFrame(t, fast, { ...fast, ...v4out, src: VIP46, dst: CLIENT4, sport: 80, dport: 40002 });
  });

  t.test('NAT46 UDP: a checksum of 0 (IPv4 "none") is computed for IPv6; the reply keeps its own', async (t) => {
    const src6 = embed(PREFIX46, CLIENT4);
    const q: PacketSpec = { src: CLIENT4, dst: VIP46_UDP, proto: 'udp', sport: 33333, dport: 53, payload: Buffer.from('odd'), udpNoChecksum: true };
    const out = testRun(dp.progFd, buildPacket(q));
    const port = natPort(CLIENT4, VIP46_UDP, 33333, 53, UDP);
    t.equal(out.data.toString('hex'), buildPacket({ ...q, src: src6, dst: BACKEND6_UDP, sport: port, dport: 5353, udpNoChecksum: false }).toString('hex'));
    t.same(verifyChecksums(out.data), { ip: true, l4: true });
    const withSum: PacketSpec = { ...q, udpNoChecksum: false, payload: Buffer.from('even') };
    expectFrame(t, withSum, { ...withSum, src: src6, dst: BACKEND6_UDP, sport: port, dport: 5353 });
    const rep: PacketSpec = { src: BACKEND6_UDP, dst: src6, proto: 'udp', sport: 5353, dport: port, payload: Buffer.from('answer') };
    expectFrame(t, rep, { ...rep, ...v4out, src: VIP46_UDP, dst: CLIENT4, sport: 53, dport: 33333 });
  });

  t.test('NAT64 TCP: the SYN becomes IPv4 from the node address and a masquerade port, and its reply IPv6', async (t) => {
    const syn: PacketSpec = { src: CLIENT6, dst: VIP64, proto: 'tcp', sport: 41001, dport: 80, tcpFlags: TCP_SYN, seq: 77, tos: 0x48, ttl: 50, payload: Buffer.from('hi') };
    let port = 0;
    let d = deltas(COUNTED, () => {
      const out = testRun(dp.progFd, buildPacket(syn));
      port = natPort(CLIENT6, VIP64, 41001, 80, TCP);
      t.equal(out.retval, XDP.PASS);
      t.equal(out.data.toString('hex'), buildPacket({ ...syn, ...v4out, src: NODE4, dst: BACKEND4, sport: port, dport: 8080 }).toString('hex'));
      t.same(verifyChecksums(out.data), { ip: true, l4: true });
    });
    t.ok(port >= 20000 && port <= 20999, `a port of the masquerade range (${port})`);
    t.same(d, { XLATE: 1, DNAT: 1, SNAT: 0, MASQ: 1, TX_PASS: 1, DROP_XLATE: 0, DROP_MALFORMED: 0 });
    const rep: PacketSpec = { src: BACKEND4, dst: NODE4, proto: 'tcp', sport: 8080, dport: port, tcpFlags: TCP_SYN | TCP_ACK, seq: 900, ack: 80, tos: 0x20, ttl: 62 };
    d = deltas(COUNTED, () => expectFrame(t, rep, { ...rep, src: VIP64, dst: CLIENT6, sport: 80, dport: 41001 }));
    t.same(d, { XLATE: 1, DNAT: 0, SNAT: 1, MASQ: 0, TX_PASS: 1, DROP_XLATE: 0, DROP_MALFORMED: 0 });
    const ack: PacketSpec = { ...syn, tcpFlags: TCP_ACK, seq: 80, ack: 901, payload: undefined };
    expectFrame(t, ack, { ...ack, ...v4out, src: NODE4, dst: BACKEND4, sport: port, dport: 8080 });
  });

  t.test('NAT64 UDP both ways; an IPv4 reply without a checksum gets one in IPv6', async (t) => {
    const q: PacketSpec = { src: CLIENT6, dst: VIP64_UDP, proto: 'udp', sport: 41002, dport: 53, payload: Buffer.from('query?') };
    const out = testRun(dp.progFd, buildPacket(q));
    const port = natPort(CLIENT6, VIP64_UDP, 41002, 53, UDP);
    t.equal(out.data.toString('hex'), buildPacket({ ...q, ...v4out, src: NODE4, dst: BACKEND4_UDP, sport: port, dport: 5353 }).toString('hex'));
    const rep: PacketSpec = { src: BACKEND4_UDP, dst: NODE4, proto: 'udp', sport: 5353, dport: port, payload: Buffer.from('odd'), udpNoChecksum: true };
    expectFrame(t, rep, { ...rep, src: VIP64_UDP, dst: CLIENT6, sport: 53, dport: 41002, udpNoChecksum: false });
  });

  const ICMP_COUNTED: Array<keyof typeof KP_STAT> = ['ICMP_XLATE', 'PASS_NOT_L4', 'TX_PASS', 'DROP_MALFORMED'];
  /** An ICMP error's expected rebuild: the client's own packet, quoted up to 8 bytes of its L4 header. */
  const quoteOf = (p: PacketSpec, l3: number) => buildPacket(p).subarray(0, 14 + l3 + 8);
  /** The ICMPv6 (or ICMPv4) error kpbpf builds, from fields, its checksum computed from scratch. */
  const icmp6Built = (quote: Buffer, type: number, code: number, rest: Buffer, src: string, dst: string) => {
    const msg = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, quote.subarray(14)]);
    const pseudo = Buffer.concat([v6ToBytes(src), v6ToBytes(dst), word32(msg.length), word32(58)]);
    msg.writeUInt16BE(inetChecksum(Buffer.concat([pseudo, msg])), 2);
    return buildPacket({ src, dst, proto: 58, payload: msg, ttl: 64 });
  };
  const icmp4Built = (quote: Buffer, type: number, code: number, rest: Buffer, src: string, dst: string) => {
    const msg = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, quote.subarray(14)]);
    msg.writeUInt16BE(inetChecksum(msg), 2);
    return buildPacket({ src, dst, proto: 1, payload: msg, tos: 0xc0, id: 0, df: false, ttl: 64 });
  };

  t.test('NAT64: a backend\'s ICMPv4 port unreachable reaches the client as ICMPv6 from the VIP, quoting what it sent', async (t) => {
    const q: PacketSpec = { src: CLIENT6, dst: VIP64_UDP, proto: 'udp', sport: 41004, dport: 53, payload: Buffer.from('anyone?') };
    testRun(dp.progFd, buildPacket(q));
    const port = natPort(CLIENT6, VIP64_UDP, 41004, 53, UDP);
    const seen = buildPacket({ ...q, ...v4out, src: NODE4, dst: BACKEND4_UDP, sport: port, dport: 5353 });
    const err = icmpError(seen, 3, 3); // from the backend to the node address
    const want = icmp6Built(quoteOf(q, 40), 1, 4, Buffer.alloc(4), VIP64_UDP, CLIENT6);
    const d = deltas(ICMP_COUNTED, () => {
      const r = testRun(dp.progFd, err);
      t.equal(r.retval, XDP.PASS);
      t.equal(r.data.toString('hex'), want.toString('hex'), 'type 1 code 4, the quote in the client\'s family with its own UDP checksum');
    });
    t.same(d, { ICMP_XLATE: 1, PASS_NOT_L4: 0, TX_PASS: 1, DROP_MALFORMED: 0 });
  });

  t.test('NAT64: "fragmentation needed" from a router becomes "packet too big" with 20 bytes more', async (t) => {
    const syn: PacketSpec = { src: CLIENT6, dst: VIP64, proto: 'tcp', sport: 41005, dport: 80, tcpFlags: TCP_SYN, seq: 5 };
    testRun(dp.progFd, buildPacket(syn));
    const port = natPort(CLIENT6, VIP64, 41005, 80, TCP);
    const seen = buildPacket({ ...syn, ...v4out, src: NODE4, dst: BACKEND4, sport: port, dport: 8080 });
    const err = icmpError(seen, 3, 4, mtuWord(1400), { src: '198.18.30.254' });
    const r = testRun(dp.progFd, err);
    t.equal(r.data.toString('hex'), icmp6Built(quoteOf(syn, 40), 2, 0, word32(1420), VIP64, CLIENT6).toString('hex'));
  });

  t.test('NAT46: ICMPv6 "packet too big" about a translated packet reaches the IPv4 client as "fragmentation needed", 20 bytes less', async (t) => {
    const src6 = embed(PREFIX46, CLIENT4);
    const syn: PacketSpec = { src: CLIENT4, dst: VIP46, proto: 'tcp', sport: 40020, dport: 80, tcpFlags: TCP_SYN, seq: 1000, tos: 0x28, ttl: 60 };
    testRun(dp.progFd, buildPacket(syn));
    const port = natPort(CLIENT4, VIP46, 40020, 80, TCP);
    const seen = buildPacket({ ...syn, src: src6, dst: BACKEND6, sport: port, dport: 8080 });
    const err = icmp6Error(seen, 2, 0, word32(1400), { src: '2001:db8:30::fe' });
    const d = deltas(ICMP_COUNTED, () => {
      const r = testRun(dp.progFd, err);
      t.equal(r.retval, XDP.PASS);
      const want = icmp4Built(quoteOf({ ...syn, ...v4out }, 20), 3, 4, mtuWord(1380), VIP46, CLIENT4);
      t.equal(r.data.toString('hex'), want.toString('hex'), 'from the VIP, quoting the IPv4 header and ports the client sent');
      t.same(verifyIcmp(r.data), { icmp: true, quotedIp: true });
    });
    t.same(d, { ICMP_XLATE: 1, PASS_NOT_L4: 0, TX_PASS: 1, DROP_MALFORMED: 0 });
  });

  t.test('NAT64: "packet too big" about a reply, from a router on the client side, reaches the backend as "fragmentation needed"', async (t) => {
    const q: PacketSpec = { src: CLIENT6, dst: VIP64_UDP, proto: 'udp', sport: 41006, dport: 53, payload: Buffer.from('big?') };
    testRun(dp.progFd, buildPacket(q));
    const port = natPort(CLIENT6, VIP64_UDP, 41006, 53, UDP);
    const rep4: PacketSpec = { src: BACKEND4_UDP, dst: NODE4, proto: 'udp', sport: 5353, dport: port, payload: Buffer.from('a big answer') };
    const rep6: PacketSpec = { ...rep4, src: VIP64_UDP, dst: CLIENT6, sport: 53, dport: 41006 };
    t.equal(testRun(dp.progFd, buildPacket(rep4)).data.toString('hex'), buildPacket(rep6).toString('hex'), 'the reply, translated');
    const err = icmp6Error(buildPacket(rep6), 2, 0, word32(1300), { src: '2001:db8:30::fe' }); // to the VIP
    const d = deltas(ICMP_COUNTED, () => {
      const r = testRun(dp.progFd, err);
      t.equal(r.retval, XDP.PASS);
      const want = icmp4Built(quoteOf({ ...rep4, ...v4out }, 20), 3, 4, mtuWord(1280), NODE4, BACKEND4_UDP);
      t.equal(r.data.toString('hex'), want.toString('hex'), 'to the backend from the masquerade address, quoting its own reply with its own UDP checksum');
    });
    t.same(d, { ICMP_XLATE: 1, PASS_NOT_L4: 0, TX_PASS: 1, DROP_MALFORMED: 0 });
  });

  t.test('NAT46: "fragmentation needed" about a reply reaches the IPv6 backend as "packet too big" from the client\'s embedded address', async (t) => {
    const src6 = embed(PREFIX46, CLIENT4);
    const port = natPort(CLIENT4, VIP46, 40002, 80, TCP); // the connection of the second test
    const rep6: PacketSpec = { src: BACKEND6, dst: src6, proto: 'tcp', sport: 8080, dport: port, tcpFlags: TCP_ACK, seq: 6000, ack: 1011, payload: Buffer.alloc(600, 7) };
    const rep4: PacketSpec = { ...rep6, ...v4out, src: VIP46, dst: CLIENT4, sport: 80, dport: 40002 };
    t.equal(testRun(dp.progFd, buildPacket(rep6)).data.toString('hex'), buildPacket(rep4).toString('hex'), 'the reply, translated');
    const err = icmpError(buildPacket(rep4), 3, 4, mtuWord(1400), { src: '198.18.30.254' });
    const r = testRun(dp.progFd, err);
    t.equal(r.data.toString('hex'), icmp6Built(quoteOf(rep6, 40), 2, 0, word32(1420), src6, BACKEND6).toString('hex'));
  });

  t.test('parameter problems: the pointer moves to the other family\'s field; an unknown next header is protocol unreachable', async (t) => {
    const q: PacketSpec = { src: CLIENT6, dst: VIP64_UDP, proto: 'udp', sport: 41050, dport: 53, payload: Buffer.from('p?') };
    testRun(dp.progFd, buildPacket(q));
    const port = natPort(CLIENT6, VIP64_UDP, 41050, 53, UDP);
    const seen = buildPacket({ ...q, ...v4out, src: NODE4, dst: BACKEND4_UDP, sport: port, dport: 5353 });
    // IPv4 pointer 8 (TTL) is IPv6's 7 (hop limit)
    const r = testRun(dp.progFd, icmpError(seen, 12, 0, Buffer.from([8, 0, 0, 0])));
    t.equal(r.data.toString('hex'), icmp6Built(quoteOf(q, 40), 4, 0, word32(7), VIP64_UDP, CLIENT6).toString('hex'), 'NAT64: type 4 code 0, pointer 7');
    const src6 = embed(PREFIX46, CLIENT4);
    const q4: PacketSpec = { src: CLIENT4, dst: VIP46_UDP, proto: 'udp', sport: 40050, dport: 53, payload: Buffer.from('p?') };
    testRun(dp.progFd, buildPacket(q4));
    const port4 = natPort(CLIENT4, VIP46_UDP, 40050, 53, UDP);
    const seen6 = buildPacket({ ...q4, src: src6, dst: BACKEND6_UDP, sport: port4, dport: 5353 });
    const r4 = testRun(dp.progFd, icmp6Error(seen6, 4, 1, word32(6)));
    t.equal(r4.data.toString('hex'), icmp4Built(quoteOf({ ...q4, ...v4out }, 20), 3, 2, Buffer.alloc(4), VIP46_UDP, CLIENT4).toString('hex'), 'NAT46: unknown next header, protocol unreachable');
    const none = icmpError(seen, 12, 0, Buffer.from([4, 0, 0, 0])); // the identification: IPv6 has none
    t.equal(testRun(dp.progFd, none).data.toString('hex'), none.toString('hex'), 'a field IPv6 lacks: untouched');
  });

  t.test('an ICMP error about no connection, or one with no counterpart (parameter problem), passes', async (t) => {
    const stray = buildPacket({ src: NODE4, dst: BACKEND4, proto: 'tcp', sport: 20999, dport: 8080, tcpFlags: TCP_SYN });
    const d = deltas(ICMP_COUNTED, () => {
      const e = icmpError(stray, 3, 3);
      t.equal(testRun(dp.progFd, e).data.toString('hex'), e.toString('hex'), 'untouched');
    });
    t.same(d, { ICMP_XLATE: 0, PASS_NOT_L4: 1, TX_PASS: 0, DROP_MALFORMED: 0 });
  });

  t.test('what cannot be translated is dropped and counted: IPv4 options, a first fragment without a UDP checksum', async (t) => {
    const opts: PacketSpec = { src: CLIENT4, dst: VIP46, proto: 'tcp', sport: 40010, dport: 80, tcpFlags: TCP_SYN, ipOptions: Buffer.from([1, 1, 1, 0]) };
    let d = deltas(['DROP_XLATE', 'XLATE'], () => t.equal(testRun(dp.progFd, buildPacket(opts)).retval, XDP.DROP));
    t.same(d, { DROP_XLATE: 1, XLATE: 0 });
    // IPv6 needs the checksum, and only the whole datagram could give it
    const frag: PacketSpec = { src: CLIENT4, dst: VIP46_UDP, proto: 'udp', sport: 40011, dport: 53, mf: true, id: 7, payload: Buffer.alloc(64, 1), udpNoChecksum: true };
    d = deltas(['DROP_XLATE', 'XLATE'], () => t.equal(testRun(dp.progFd, buildPacket(frag)).retval, XDP.DROP));
    t.same(d, { DROP_XLATE: 1, XLATE: 0 });
  });

  // A datagram in two fragments, each way: the first carries the ports, the later one follows it.
  const big = Buffer.alloc(200, 0x5a);
  const runFrags = (t: Test, inFrags: Buffer[], outFrags: Buffer[], what: string) => {
    inFrags.forEach((f, i) => {
      const r = testRun(dp.progFd, f);
      t.equal(r.retval, XDP.PASS, `${what} ${i}: verdict`);
      t.equal(r.data.toString('hex'), outFrags[i].toString('hex'), `${what} ${i}: bytes`);
    });
  };

  t.test('NAT46 fragments: IPv4 fragments become IPv6 ones with a fragment header (identification carried), and back', async (t) => {
    const src6 = embed(PREFIX46, CLIENT4);
    const q: PacketSpec = { src: CLIENT4, dst: VIP46_UDP, proto: 'udp', sport: 40040, dport: 53, id: 0x1234, payload: big };
    const fin = fragments(q, 64);
    let port = 0;
    const d = deltas(['XLATE', 'FRAG_XLATE', 'DROP_FRAG', 'DROP_XLATE'], () => {
      const first = testRun(dp.progFd, fin[0]);
      port = natPort(CLIENT4, VIP46_UDP, 40040, 53, UDP);
      const fout = fragments({ ...q, src: src6, dst: BACKEND6_UDP, sport: port, dport: 5353 }, 64);
      t.equal(first.data.toString('hex'), fout[0].toString('hex'), 'the first fragment: the L4 checksum over the datagram, moved for the IPv6 pseudo-header');
      runFrags(t, [fin[1]], [fout[1]], 'the later fragment');
    });
    t.same(d, { XLATE: 2, FRAG_XLATE: 1, DROP_FRAG: 0, DROP_XLATE: 0 });
    const rep: PacketSpec = { src: BACKEND6_UDP, dst: src6, proto: 'udp', sport: 5353, dport: port, id: 0xabcd5678, payload: big };
    const back = fragments({ ...rep, src: VIP46_UDP, dst: CLIENT4, sport: 53, dport: 40040, id: 0x5678 }, 64);
    runFrags(t, fragments(rep, 64), back, 'the reply fragment');
  });

  t.test('NAT64 fragments: the client\'s IPv6 fragments become IPv4 ones, the backend\'s IPv4 fragments IPv6 ones', async (t) => {
    const q: PacketSpec = { src: CLIENT6, dst: VIP64_UDP, proto: 'udp', sport: 41040, dport: 53, id: 0x10002, payload: big };
    const fin = fragments(q, 64);
    const first = testRun(dp.progFd, fin[0]); // makes the connection
    const port = natPort(CLIENT6, VIP64_UDP, 41040, 53, UDP);
    const fout = fragments({ ...q, src: NODE4, dst: BACKEND4_UDP, sport: port, dport: 5353, id: 0x0002 }, 64);
    t.equal(first.data.toString('hex'), fout[0].toString('hex'), 'the first fragment: the identification\'s low 16 bits, DF clear');
    runFrags(t, fin.slice(1), fout.slice(1), 'the later fragment');
    const rep: PacketSpec = { src: BACKEND4_UDP, dst: NODE4, proto: 'udp', sport: 5353, dport: port, id: 0x4321, payload: big };
    const back = fragments({ ...rep, src: VIP64_UDP, dst: CLIENT6, sport: 53, dport: 41040 }, 64);
    runFrags(t, fragments(rep, 64), back, 'the reply fragment');
  });

  t.test('NAT64 with no IPv4 masquerade address: nothing can reach the backends (port unreachable)', async (t) => {
    dp.maps.masq.update(MASQ_V4, { addr: '', portMin: 20000, portMax: 20999 });
    t.teardown(() => dp.maps.masq.update(MASQ_V4, { addr: NODE4, portMin: 20000, portMax: 20999 }));
    const syn: PacketSpec = { src: CLIENT6, dst: VIP64, proto: 'tcp', sport: 41003, dport: 80, tcpFlags: TCP_SYN, seq: 1 };
    const d = deltas(['REJECT', 'XLATE'], () => {
      const out = testRun(dp.progFd, buildPacket(syn));
      t.equal(out.retval, XDP.PASS);
      const p = parsePacket(out.data);
      t.equal(p.proto, 58, 'ICMPv6');
      t.equal(p.dst, CLIENT6);
    });
    t.same(d, { REJECT: 1, XLATE: 0 });
  });

  /** One connection through a VIP entry of another type: forward and reply bytes, both ways. */
  const both = (t: Test, fwd: PacketSpec, backend: string, target: number, source: string, natSource?: string) => {
    const out = testRun(dp.progFd, buildPacket(fwd));
    t.equal(out.retval, XDP.PASS);
    const port = natPort(fwd.src, fwd.dst, fwd.sport!, fwd.dport!, fwd.proto === 'tcp' ? TCP : UDP);
    const v4 = !backend.includes(':');
    const seen: PacketSpec = { ...fwd, ...(v4 ? v4out : {}), src: natSource ?? source, dst: backend, sport: port, dport: target };
    t.equal(out.data.toString('hex'), buildPacket(seen).toString('hex'), 'forward, translated');
    const rep: PacketSpec = { src: backend, dst: seen.src, proto: fwd.proto, sport: target, dport: port, payload: Buffer.from('back'), ...(fwd.proto === 'tcp' ? { tcpFlags: TCP_SYN | TCP_ACK, seq: 1, ack: 2 } : {}) };
    const back = { ...rep, ...(v4 ? {} : v4out), src: fwd.dst, dst: fwd.src, sport: fwd.dport, dport: fwd.sport };
    expectFrame(t, rep, back);
  };

  t.test('NAT46 node port on the node IPv4 address, UDP: to the IPv6 backend and back from the node port', async (t) => {
    both(t, { src: CLIENT4, dst: NODE4, proto: 'udp', sport: 40030, dport: NP46, payload: Buffer.from('np') }, BACKEND6_UDP, 5353, '', embed(PREFIX46, CLIENT4));
  });

  t.test('NAT64 node port on the node IPv6 address, TCP', async (t) => {
    both(t, { src: CLIENT6, dst: NODE6, proto: 'tcp', sport: 41030, dport: NP64, tcpFlags: TCP_SYN, seq: 1 }, BACKEND4, 8080, '', NODE4);
  });

  t.test('NAT46 LoadBalancer IP with source ranges, TCP; a source outside them is dropped', async (t) => {
    both(t, { src: CLIENT4, dst: LB46, proto: 'tcp', sport: 40031, dport: 443, tcpFlags: TCP_SYN, seq: 1 }, BACKEND6, 8443, '', embed(PREFIX46, CLIENT4));
    const d = deltas(['DROP_SRC_RANGE', 'XLATE'], () => {
      t.equal(testRun(dp.progFd, buildPacket({ src: '198.18.9.9', dst: LB46, proto: 'tcp', sport: 40032, dport: 443, tcpFlags: TCP_SYN })).retval, XDP.DROP);
    });
    t.same(d, { DROP_SRC_RANGE: 1, XLATE: 0 });
  });

  t.test('NAT64 external IP, UDP', async (t) => {
    both(t, { src: CLIENT6, dst: EXT64, proto: 'udp', sport: 41031, dport: 8053, payload: Buffer.from('ext') }, BACKEND4_UDP, 5353, '', NODE4);
  });

  t.test('a VIP that changes family: its old backends drain (their connections go on), new ones of the other family take over', async (t) => {
    const v = vips.add({ prefix: '198.18.48.1/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
    vips.addBackends(v, ['198.18.48.10'], 1);
    const syn: PacketSpec = { src: CLIENT4, dst: '198.18.48.1', proto: 'tcp', sport: 40060, dport: 80, tcpFlags: TCP_SYN, seq: 1 };
    t.equal(parsePacket(testRun(dp.progFd, buildPacket(syn)).data).dst, '198.18.48.10', 'NAT44 first');
    const moved = vips.add({ prefix: '198.18.48.1/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7, encap: 'nat46' });
    t.same(moved.backends.map((b) => [b.address, b.state]), [['198.18.48.10', 'draining']], 'the IPv4 backend drains');
    vips.addBackends(moved, [BACKEND6], 1);
    const ack: PacketSpec = { ...syn, tcpFlags: TCP_ACK, seq: 2 };
    t.equal(parsePacket(testRun(dp.progFd, buildPacket(ack)).data).dst, '198.18.48.10', 'the live connection stays on its IPv4 backend');
    const fresh = testRun(dp.progFd, buildPacket({ ...syn, sport: 40061 }));
    t.equal(parsePacket(fresh.data).dst, BACKEND6, 'a new one is NAT46 to the IPv6 backend');
    t.throws(() => vips.addBackends(moved, ['198.18.48.11'], 1), /needs IPv6 backends \(encap nat46\)/);
  });

  t.test('show: the VIPs say their encap', async (t) => {
    const list = vips.list().slice(0, 4);
    t.same(list.map((v) => [v.prefix, v.encap]), [
      [`${VIP46}/32`, 'nat46'],
      [`${VIP46_UDP}/32`, 'nat46'],
      [`${VIP64}/128`, 'nat64'],
      [`${VIP64_UDP}/128`, 'nat64'],
    ]);
    t.match(vips.list().find((v) => v.prefix === '198.18.46.3/32'), { encap: 'nat46', nodePort: NP46, nodeAddresses: [NODE4] }, 'a NAT46 node port on the IPv4 node address only');
    t.throws(() => vips.addBackends(list[0], ['198.18.46.99'], 1), /needs IPv6 backends/, 'a NAT46 VIP takes IPv6 backends only');
  });
}
