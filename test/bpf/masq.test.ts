// Masquerade in build/kp.bpf.o under BPF_PROG_TEST_RUN. Under externalTrafficPolicy cluster, a
// connection through a node port to a backend on another node leaves from the node address it was
// sent to, with a port allocated from the masquerade range, and its replies are translated back to
// the client; a local backend, or policy local, keeps the client's address. LoadBalancer IPs use the
// configured masquerade address, hairpin connections (a pod reaching itself) too. Output bytes are
// built from fields with checksums computed from scratch (test/helpers/packet.ts).
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { CT_FLAG, MASQ_V4, MASQ_V6 } from '../../src/maps/codecs.js';
import { buildPacket, icmp6Error, icmpError, mtuWord, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, verifyIcmp, word32, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, testConfig, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const NODE = '198.18.0.1';
const MASQ_ADDR = '198.18.0.254';
const CLUSTER_IP = '198.18.100.40';
const LB_IP = '198.18.110.40';
const NODE_PORT = 30777;
const REMOTE = '198.18.21.1';
const LOCAL = '198.18.20.1';
const POD = '198.18.20.9'; // a pod on this node that is its own service's only backend
const HAIRPIN_VIP = '198.18.100.41';
const CLIENT = '198.18.0.10';
const CLIENT2 = '198.18.0.11';
const ROUTER = '198.18.9.1';
const PORTS = [61000, 65535];
// The same roles in IPv6 (NAT66): the node's IPv6 address, masquerade_address6, and the rest.
const NODE6 = '2001:db8::1';
const MASQ6 = '2001:db8::fe';
const CLUSTER6 = '2001:db8:100::40';
const LB6 = '2001:db8:110::40';
const REMOTE6 = '2001:db8:21::1';
const LOCAL6 = '2001:db8:20::1';
const POD6 = '2001:db8:20::9';
const HAIRPIN6 = '2001:db8:100::41';
const CLIENT6 = '2001:db8:1::10';
const CLIENT6B = '2001:db8:1::11';
const ROUTER6 = '2001:db8:9::1';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('masquerade fixtures', { skip: reason }, async () => {});
else run();

function run() {
  const dp: Dataplane = loadDataplane({ objectPath: KP_OBJECT, buckets: 4096 });
  t.teardown(() => dp.close());
  dp.maps.config.update(0, testConfig({ hashSeed: 5, flags: KP_CONF_F_NO_FIB }));
  dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: PORTS[0], portMax: PORTS[1] });
  dp.maps.masq.update(MASQ_V6, { addr: MASQ6, portMin: 0, portMax: 0 });
  const vips = new VipTable(dp, () => [NODE, NODE6]);
  const stat = (name: keyof typeof KP_STAT) => dp.maps.stats.sum(KP_STAT[name], addU64)!;
  let nextPort = NODE_PORT;
  let nodePort = NODE_PORT;
  /** A new VIP (cluster IP, node port) per call, with one backend; nodePort names its node port. */
  const add = (o: { proto: 'tcp' | 'udp'; backend: string; local?: boolean; etpLocal?: boolean; prefix?: string; type?: 'loadbalancer'; nodePort?: number }) => {
    nodePort = nextPort++;
    const v = vips.add({
      prefix: `${o.prefix ?? CLUSTER_IP}/${(o.prefix ?? CLUSTER_IP).includes(':') ? 128 : 32}`,
      protocol: o.proto,
      port: nodePort, // a VIP of its own each time
      targetPort: 8080,
      newLen: 7,
      ...(o.nodePort !== 0 ? { nodePort } : {}),
      ...(o.type ? { type: o.type } : {}),
      externalTrafficPolicy: o.etpLocal ? 'local' : 'cluster',
    });
    vips.addBackends(v, [o.backend], 1, { local: o.local });
    return v;
  };
  /** The forward packet as sent, what the backend receives, and the port the record says it was given. */
  const forward = (spec: PacketSpec) => {
    const r = testRun(dp.progFd, buildPacket(spec));
    return { retval: r.retval, out: r.data, got: parsePacket(r.data) };
  };

  for (const proto of ['tcp', 'udp'] as const) {
    t.test(`${proto.toUpperCase()} through the node port to a backend on another node: masqueraded to the node address, and back`, async (t) => {
      add({ proto, backend: REMOTE });
      const sport = proto === 'tcp' ? 40001 : 40002;
      const syn: PacketSpec = { src: CLIENT, dst: NODE, proto, sport, dport: nodePort, tcpFlags: TCP_SYN, payload: Buffer.from('hello') };
      const m0 = stat('MASQ');
      const f = forward(syn);
      t.equal(f.retval, XDP.PASS);
      const port = f.got.sport!;
      t.ok(port >= PORTS[0] && port <= PORTS[1], `source port ${port} from the masquerade range`);
      t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: NODE, sport: port, dst: REMOTE, dport: 8080 }).toString('hex'), 'exact bytes: from the node address and the allocated port, to the backend');
      t.same(verifyChecksums(f.out), { ip: true, l4: true });
      t.equal(stat('MASQ') - m0, 1n, 'MASQ counts the new connection');
      const fwdRec = dp.maps.ct.lookup({ saddr: CLIENT, daddr: NODE, sport, dport: nodePort, proto: proto === 'tcp' ? 6 : 17 })!;
      t.match(fwdRec, { clientPort: port, vipAddr: NODE }, 'the record keeps the masquerade source');
      t.ok(fwdRec.flags & CT_FLAG.masq);
      const reply: PacketSpec = { src: REMOTE, dst: NODE, proto, sport: 8080, dport: port, tcpFlags: TCP_SYN | TCP_ACK, payload: Buffer.from('world!') };
      const rr = testRun(dp.progFd, buildPacket(reply));
      t.equal(rr.retval, XDP.PASS);
      t.equal(rr.data.toString('hex'), buildPacket({ ...reply, src: NODE, sport: nodePort, dst: CLIENT, dport: sport }).toString('hex'), 'exact bytes: reply from the node port, to the client');
      t.same(verifyChecksums(rr.data), { ip: true, l4: true });
      const next = forward({ ...syn, tcpFlags: TCP_ACK, payload: Buffer.from('more') });
      t.match(next.got, { src: NODE, sport: port, dst: REMOTE }, 'the next packet keeps the allocated port');
    });
  }

  t.test('UDP without a checksum stays without one when masqueraded', async (t) => {
    add({ proto: 'udp', backend: REMOTE });
    const q: PacketSpec = { src: CLIENT, dst: NODE, proto: 'udp', sport: 40010, dport: nodePort, payload: Buffer.from('q'), udpNoChecksum: true };
    const f = forward(q);
    t.equal(f.out.toString('hex'), buildPacket({ ...q, src: NODE, sport: f.got.sport, dst: REMOTE, dport: 8080 }).toString('hex'));
    const r = testRun(dp.progFd, buildPacket({ src: REMOTE, dst: NODE, proto: 'udp', sport: 8080, dport: f.got.sport, payload: Buffer.from('a'), udpNoChecksum: true }));
    t.equal(r.data.toString('hex'), buildPacket({ src: NODE, dst: CLIENT, proto: 'udp', sport: nodePort, dport: 40010, payload: Buffer.from('a'), udpNoChecksum: true }).toString('hex'));
  });

  t.test('two clients with the same source port get two ports, and each reply finds its own client', async (t) => {
    add({ proto: 'tcp', backend: REMOTE });
    const a = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 40020, dport: nodePort, tcpFlags: TCP_SYN });
    const b = forward({ src: CLIENT2, dst: NODE, proto: 'tcp', sport: 40020, dport: nodePort, tcpFlags: TCP_SYN });
    t.not(a.got.sport, b.got.sport, 'distinct masquerade ports');
    for (const [x, client] of [[a, CLIENT], [b, CLIENT2]] as const) {
      const r = parsePacket(testRun(dp.progFd, buildPacket({ src: REMOTE, dst: NODE, proto: 'tcp', sport: 8080, dport: x.got.sport, tcpFlags: TCP_SYN | TCP_ACK })).data);
      t.match(r, { src: NODE, sport: nodePort, dst: client, dport: 40020 });
    }
  });

  t.test('a local backend, or externalTrafficPolicy local, keeps the client address', async (t) => {
    add({ proto: 'tcp', backend: LOCAL, local: true });
    const f = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 40030, dport: nodePort, tcpFlags: TCP_SYN });
    t.match(f.got, { src: CLIENT, sport: 40030, dst: LOCAL }, 'local backend: not masqueraded');
    add({ proto: 'tcp', backend: LOCAL, local: true, etpLocal: true });
    const g = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 40031, dport: nodePort, tcpFlags: TCP_SYN });
    t.match(g.got, { src: CLIENT, sport: 40031, dst: LOCAL }, 'policy local: not masqueraded');
    add({ proto: 'tcp', backend: REMOTE });
    const c = forward({ src: CLIENT, dst: CLUSTER_IP, proto: 'tcp', sport: 40032, dport: nodePort, tcpFlags: TCP_SYN });
    t.match(c.got, { src: CLIENT, sport: 40032, dst: REMOTE }, 'the cluster IP of a VIP whose node port masquerades does not');
  });

  t.test('a LoadBalancer IP masquerades to the masquerade address; with none set it keeps the client', async (t) => {
    add({ proto: 'tcp', backend: REMOTE, prefix: LB_IP, type: 'loadbalancer', nodePort: 0 });
    const syn: PacketSpec = { src: CLIENT, dst: LB_IP, proto: 'tcp', sport: 40040, dport: nodePort, tcpFlags: TCP_SYN, payload: Buffer.from('x') };
    const f = forward(syn);
    t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: MASQ_ADDR, sport: f.got.sport, dst: REMOTE, dport: 8080 }).toString('hex'));
    const r = testRun(dp.progFd, buildPacket({ src: REMOTE, dst: MASQ_ADDR, proto: 'tcp', sport: 8080, dport: f.got.sport, tcpFlags: TCP_SYN | TCP_ACK }));
    t.equal(r.data.toString('hex'), buildPacket({ src: LB_IP, dst: CLIENT, proto: 'tcp', sport: nodePort, dport: 40040, tcpFlags: TCP_SYN | TCP_ACK }).toString('hex'));
    dp.maps.masq.update(MASQ_V4, { addr: '', portMin: PORTS[0], portMax: PORTS[1] });
    const g = forward({ ...syn, sport: 40041 });
    t.match(g.got, { src: CLIENT, sport: 40041, dst: REMOTE }, 'no masquerade address: the client address is kept');
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: PORTS[0], portMax: PORTS[1] });
  });

  t.test('hairpin: a pod reaching itself through its service comes from the masquerade address, and the reply from the VIP', async (t) => {
    const v = vips.add({ prefix: `${HAIRPIN_VIP}/32`, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
    vips.addBackends(v, [POD], 1, { local: true });
    const syn: PacketSpec = { src: POD, dst: HAIRPIN_VIP, proto: 'tcp', sport: 40050, dport: 80, tcpFlags: TCP_SYN, payload: Buffer.from('me') };
    const f = forward(syn);
    t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: MASQ_ADDR, sport: f.got.sport, dst: POD, dport: 8080 }).toString('hex'), 'exact bytes: to itself, from the masquerade address');
    const reply: PacketSpec = { src: POD, dst: MASQ_ADDR, proto: 'tcp', sport: 8080, dport: f.got.sport, tcpFlags: TCP_SYN | TCP_ACK, payload: Buffer.from('yes') };
    const r = testRun(dp.progFd, buildPacket(reply));
    t.equal(r.data.toString('hex'), buildPacket({ ...reply, src: HAIRPIN_VIP, sport: 80, dst: POD, dport: 40050 }).toString('hex'), 'exact bytes: the reply comes from the VIP');
    t.same(verifyChecksums(r.data), { ip: true, l4: true });
    const other = forward({ src: LOCAL, dst: HAIRPIN_VIP, proto: 'tcp', sport: 40051, dport: 80, tcpFlags: TCP_SYN });
    t.match(other.got, { src: LOCAL, sport: 40051, dst: POD }, 'another pod to the same service is not masqueraded');
  });

  t.test('ICMP errors about a masqueraded connection reach the client and the backend translated', async (t) => {
    add({ proto: 'udp', backend: REMOTE });
    const q: PacketSpec = { src: CLIENT, dst: NODE, proto: 'udp', sport: 40060, dport: nodePort, payload: Buffer.from('query') };
    const f = forward(q);
    const atBackend = buildPacket({ ...q, src: NODE, sport: f.got.sport, dst: REMOTE, dport: 8080 });
    const err = testRun(dp.progFd, icmpError(atBackend, 3, 4, mtuWord(1400), { src: ROUTER }));
    t.equal(err.data.toString('hex'), icmpError(buildPacket(q), 3, 4, mtuWord(1400), { src: ROUTER }).toString('hex'), "a router's frag-needed: to the client, quoting client -> node port");
    t.same(verifyIcmp(err.data), { icmp: true, quotedIp: true });
    const answer: PacketSpec = { src: NODE, dst: CLIENT, proto: 'udp', sport: nodePort, dport: 40060, payload: Buffer.from('answer') };
    const back = testRun(dp.progFd, icmpError(buildPacket(answer), 3, 3));
    const atBackendReply = buildPacket({ ...answer, src: REMOTE, sport: 8080, dst: NODE, dport: f.got.sport });
    t.equal(back.data.toString('hex'), icmpError(atBackendReply, 3, 3, undefined, { src: NODE }).toString('hex'), "the client's port unreachable: to the backend, from and quoting the masquerade source");
  });

  t.test('under port pressure a UDP flow that never saw a reply gives its port up; one that did keeps it', async (t) => {
    add({ proto: 'udp', backend: REMOTE });
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: 61001, portMax: 61001 });
    const q = (src: string, sport: number) => forward({ src, dst: NODE, proto: 'udp', sport, dport: nodePort, payload: Buffer.from('q') });
    t.equal(q(CLIENT, 40080).got.sport, 61001, 'the one port');
    const e0 = stat('MASQ_EVICT');
    const b = q(CLIENT2, 40081);
    t.equal(b.got.sport, 61001, 'taken from the unreplied flow');
    t.equal(stat('MASQ_EVICT') - e0, 1n, 'counted');
    t.notOk(dp.maps.ct.lookup({ saddr: CLIENT, daddr: NODE, sport: 40080, dport: nodePort, proto: 17 }), "the evicted flow's record is gone");
    const reply = testRun(dp.progFd, buildPacket({ src: REMOTE, dst: NODE, proto: 'udp', sport: 8080, dport: 61001, payload: Buffer.from('a') }));
    t.match(parsePacket(reply.data), { dst: CLIENT2, dport: 40081 }, "the reply goes to the port's new holder");
    const d0 = stat('DROP_MASQ_PORTS');
    const c = q('198.18.0.12', 40082);
    t.equal(c.retval, XDP.DROP, 'a flow that saw a reply keeps its port');
    t.equal(stat('DROP_MASQ_PORTS') - d0, 1n);
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: PORTS[0], portMax: PORTS[1] });
  });

  t.test('with every port of the range taken, a new masqueraded connection is dropped and counted', async (t) => {
    add({ proto: 'tcp', backend: REMOTE });
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: 61000, portMax: 61000 });
    const a = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 40070, dport: nodePort, tcpFlags: TCP_SYN });
    t.equal(a.got.sport, 61000, 'the one port');
    const d0 = stat('DROP_MASQ_PORTS');
    const b = forward({ src: CLIENT2, dst: NODE, proto: 'tcp', sport: 40071, dport: nodePort, tcpFlags: TCP_SYN });
    t.equal(b.retval, XDP.DROP);
    t.equal(stat('DROP_MASQ_PORTS') - d0, 1n);
    const again = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 40070, dport: nodePort, tcpFlags: TCP_ACK });
    t.match(again.got, { src: NODE, sport: 61000 }, 'the connection holding it is untouched');
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: PORTS[0], portMax: PORTS[1] });
  });
  for (const proto of ['tcp', 'udp'] as const) {
    t.test(`IPv6 ${proto.toUpperCase()} through the node port on the node's IPv6 address to a backend on another node: masqueraded to that address, and back`, async (t) => {
      add({ proto, backend: REMOTE6, prefix: CLUSTER6 });
      const sport = proto === 'tcp' ? 41001 : 41002;
      const syn: PacketSpec = { src: CLIENT6, dst: NODE6, proto, sport, dport: nodePort, tcpFlags: TCP_SYN, payload: Buffer.from('hello6') };
      const m0 = stat('MASQ');
      const f = forward(syn);
      t.equal(f.retval, XDP.PASS);
      const port = f.got.sport!;
      t.ok(port >= PORTS[0] && port <= PORTS[1], `source port ${port} from the masquerade range (shared with IPv4)`);
      t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: NODE6, sport: port, dst: REMOTE6, dport: 8080 }).toString('hex'), 'exact bytes: from the node address and the allocated port, to the backend');
      t.same(verifyChecksums(f.out), { ip: true, l4: true });
      t.equal(stat('MASQ') - m0, 1n, 'MASQ counts the new connection');
      const reply: PacketSpec = { src: REMOTE6, dst: NODE6, proto, sport: 8080, dport: port, tcpFlags: TCP_SYN | TCP_ACK, payload: Buffer.from('world6') };
      const rr = testRun(dp.progFd, buildPacket(reply));
      t.equal(rr.data.toString('hex'), buildPacket({ ...reply, src: NODE6, sport: nodePort, dst: CLIENT6, dport: sport }).toString('hex'), 'exact bytes: reply from the node port, to the client');
      t.same(verifyChecksums(rr.data), { ip: true, l4: true });
      const v4 = forward({ src: CLIENT, dst: NODE, proto, sport, dport: nodePort, tcpFlags: TCP_SYN });
      t.match(v4.got, { src: CLIENT, dst: NODE }, "the node port is the IPv6 VIP's only: IPv4 to it passes untouched");
    });
  }

  t.test('a dual-stack service: an IPv4 and an IPv6 VIP share the node port number, each on its own family', async (t) => {
    const np = 30999;
    const mk = (prefix: string, backend: string) => {
      const v = vips.add({ prefix, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7, nodePort: np, externalTrafficPolicy: 'cluster' });
      vips.addBackends(v, [backend], 1);
    };
    mk('198.18.100.50/32', REMOTE);
    mk('2001:db8:100::50/128', REMOTE6);
    const a = forward({ src: CLIENT, dst: NODE, proto: 'tcp', sport: 41010, dport: np, tcpFlags: TCP_SYN });
    t.match(a.got, { src: NODE, dst: REMOTE, dport: 8080 }, 'IPv4 node port: the IPv4 backend');
    const b = forward({ src: CLIENT6, dst: NODE6, proto: 'tcp', sport: 41010, dport: np, tcpFlags: TCP_SYN });
    t.match(b.got, { src: NODE6, dst: REMOTE6, dport: 8080 }, 'IPv6 node port: the IPv6 backend');
  });

  t.test('an IPv6 LoadBalancer IP masquerades to masquerade_address6; with none set it keeps the client', async (t) => {
    add({ proto: 'tcp', backend: REMOTE6, prefix: LB6, type: 'loadbalancer', nodePort: 0 });
    const syn: PacketSpec = { src: CLIENT6, dst: LB6, proto: 'tcp', sport: 41020, dport: nodePort, tcpFlags: TCP_SYN, payload: Buffer.from('x') };
    const f = forward(syn);
    t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: MASQ6, sport: f.got.sport, dst: REMOTE6, dport: 8080 }).toString('hex'));
    const r = testRun(dp.progFd, buildPacket({ src: REMOTE6, dst: MASQ6, proto: 'tcp', sport: 8080, dport: f.got.sport, tcpFlags: TCP_SYN | TCP_ACK }));
    t.equal(r.data.toString('hex'), buildPacket({ src: LB6, dst: CLIENT6, proto: 'tcp', sport: nodePort, dport: 41020, tcpFlags: TCP_SYN | TCP_ACK }).toString('hex'));
    dp.maps.masq.update(MASQ_V6, { addr: '', portMin: 0, portMax: 0 });
    const g = forward({ ...syn, sport: 41021 });
    t.match(g.got, { src: CLIENT6, sport: 41021, dst: REMOTE6 }, 'no IPv6 masquerade address: the client address is kept');
    dp.maps.masq.update(MASQ_V4, { addr: '', portMin: PORTS[0], portMax: PORTS[1] });
    dp.maps.masq.update(MASQ_V6, { addr: MASQ6, portMin: 0, portMax: 0 });
    const h = forward({ ...syn, sport: 41022 });
    t.match(h.got, { src: MASQ6, dst: REMOTE6 }, "the IPv4 entry's address does not matter to IPv6");
    dp.maps.masq.update(MASQ_V4, { addr: MASQ_ADDR, portMin: PORTS[0], portMax: PORTS[1] });
  });

  t.test('IPv6 hairpin: a pod reaching itself through its service comes from masquerade_address6, and the reply from the VIP', async (t) => {
    const v = vips.add({ prefix: `${HAIRPIN6}/128`, protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
    vips.addBackends(v, [POD6], 1, { local: true });
    const syn: PacketSpec = { src: POD6, dst: HAIRPIN6, proto: 'tcp', sport: 41030, dport: 80, tcpFlags: TCP_SYN, payload: Buffer.from('me') };
    const f = forward(syn);
    t.equal(f.out.toString('hex'), buildPacket({ ...syn, src: MASQ6, sport: f.got.sport, dst: POD6, dport: 8080 }).toString('hex'), 'exact bytes: to itself, from the masquerade address');
    const reply: PacketSpec = { src: POD6, dst: MASQ6, proto: 'tcp', sport: 8080, dport: f.got.sport, tcpFlags: TCP_SYN | TCP_ACK, payload: Buffer.from('yes') };
    const r = testRun(dp.progFd, buildPacket(reply));
    t.equal(r.data.toString('hex'), buildPacket({ ...reply, src: HAIRPIN6, sport: 80, dst: POD6, dport: 41030 }).toString('hex'), 'exact bytes: the reply comes from the VIP');
    t.same(verifyChecksums(r.data), { ip: true, l4: true });
    const other = forward({ src: LOCAL6, dst: HAIRPIN6, proto: 'tcp', sport: 41031, dport: 80, tcpFlags: TCP_SYN });
    t.match(other.got, { src: LOCAL6, sport: 41031, dst: POD6 }, 'another pod to the same service is not masqueraded');
  });

  t.test('ICMPv6 errors about a masqueraded IPv6 connection reach the client and the backend translated', async (t) => {
    add({ proto: 'udp', backend: REMOTE6, prefix: CLUSTER6 });
    const q: PacketSpec = { src: CLIENT6B, dst: NODE6, proto: 'udp', sport: 41040, dport: nodePort, payload: Buffer.from('query') };
    const f = forward(q);
    const atBackend = buildPacket({ ...q, src: NODE6, sport: f.got.sport, dst: REMOTE6, dport: 8080 });
    const err = testRun(dp.progFd, icmp6Error(atBackend, 2, 0, word32(1400), { src: ROUTER6 }));
    t.equal(err.data.toString('hex'), icmp6Error(buildPacket(q), 2, 0, word32(1400), { src: ROUTER6 }).toString('hex'), "a router's packet too big: to the client, quoting client -> node port");
    const answer: PacketSpec = { src: NODE6, dst: CLIENT6B, proto: 'udp', sport: nodePort, dport: 41040, payload: Buffer.from('answer') };
    const back = testRun(dp.progFd, icmp6Error(buildPacket(answer), 1, 4));
    const atBackendReply = buildPacket({ ...answer, src: REMOTE6, sport: 8080, dst: NODE6, dport: f.got.sport });
    t.equal(back.data.toString('hex'), icmp6Error(atBackendReply, 1, 4, undefined, { src: NODE6 }).toString('hex'), "the client's port unreachable: to the backend, from and quoting the masquerade source");
  });
  t.test("a prefix VIP with a node port (the seed's 2004::/16 shape): the prefix and the node's IPv6 address reach the same backends", async (t) => {
    const np = 30966;
    const v = vips.add({ prefix: '2001:db8:4000::/36', protocol: 'tcp', port: 6306, targetPort: 6307, newLen: 1021, nodePort: np, externalTrafficPolicy: 'cluster' });
    vips.addBackends(v, [REMOTE6], 1);
    const inPrefix = forward({ src: CLIENT6, dst: '2001:db8:4abc::7', proto: 'tcp', sport: 41050, dport: 6306, tcpFlags: TCP_SYN });
    t.match(inPrefix.got, { src: CLIENT6, dst: REMOTE6, dport: 6307 }, 'an address inside the prefix: DNAT to the backend, client kept');
    const viaNode = forward({ src: CLIENT6, dst: NODE6, proto: 'tcp', sport: 41051, dport: np, tcpFlags: TCP_SYN });
    t.match(viaNode.got, { src: NODE6, dst: REMOTE6, dport: 6307 }, 'the node port: DNAT to the backend, masqueraded to the node address');
    const r = parsePacket(testRun(dp.progFd, buildPacket({ src: REMOTE6, dst: NODE6, proto: 'tcp', sport: 6307, dport: viaNode.got.sport!, tcpFlags: TCP_SYN | TCP_ACK })).data);
    t.match(r, { src: NODE6, sport: np, dst: CLIENT6, dport: 41051 }, 'its reply leaves from the node port');
    t.match(vips.list().find((x) => x.prefix === '2001:db8:4000::/36'), { nodePort: np, nodeAddresses: [NODE6] });
    vips.del(v);
    t.notOk(dp.maps.vips.lookup({ addr: NODE6, port: np, proto: 6 }), 'deleting the VIP removes its node port entry');
  });
}
