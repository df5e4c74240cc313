// End to end: the design card's own sequence with a plain `kpbpf attach` (no --redirect), on veths whose
// peers have GRO off (as a pod's veth comes) and on the same layout with GRO on: a cluster IP, the node port (masqueraded to the node's
// address), NAT64 and a hairpin connection. A packet whose new source is a node address is handed
// to the kernel (XDP_PASS), which drops it as a martian unless the interface accepts local sources:
// the attach sets that up (accept_local, and loose reverse-path filtering where it was strict) and
// the detach puts back what was there. Addresses: 198.18.0.0/15 and 2001:db8::/32 only.
import t, { type Test } from 'tap';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.31';
const VIP64 = '2001:db8:100::31';
const NODE_PORT = 30964;
const NP64 = 30965;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end with a plain attach (no redirect, no GRO on the peers)', { skip }, async () => {});
} else {
  for (const gro of [false, true]) t.test(`peers with GRO ${gro ? 'on' : 'off'}`, async (t) => run(t, gro));
}

function run(t: Test, gro: boolean) {
  const { topo, kp, kpJson } = e2eHarness(t, gro ? 'plg' : 'pl', 2, { ipv6: true, gro });
  function client(mode: string, host: string, port: number, count: number, ns = topo.client.ns) {
    const out = topo.exec(ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '2000']);
    return JSON.parse(out.trim().split('\n').pop()!);
  }
  const sysctl = (key: string) => topo.exec(topo.node.ns, ['sysctl', '-n', key]).trim();
  const rp = (i: string) => `net.ipv4.conf.${i}.rp_filter`;
  const al = (i: string) => `net.ipv4.conf.${i}.accept_local`;
  let attachOut = '';

  t.before(async () => {
    for (const b of topo.backends as Backend[]) await topo.startServers(b, { tcp: 3307, udp: 3307 });
    // A host as many distributions leave it: strict reverse-path filtering on one interface, and a
    // default route (loose filtering wants a route back to a reply's new source, a cluster IP).
    topo.exec(topo.node.ns, ['sysctl', '-qw', `${rp(topo.backends[1].nodeIf)}=1`]);
    topo.exec(topo.node.ns, ['ip', 'route', 'add', 'default', 'via', topo.client.addr]);
    attachOut = kp('attach', ...topo.nodeIfs());
    kp('vip', 'add', `${VIP}/32`, 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT));
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'udp', 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT));
    kp('vip', 'add', `${VIP64}/128`, 'port', '80', 'target', '3307', 'nodeport', String(NP64), 'encap', 'nat64');
    const [b1, b2] = topo.backends;
    for (const proto of ['tcp', 'udp']) {
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', '3306', 'local', b1.addr);
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', '3306', b2.addr);
    }
    kp('backend', 'add', `${VIP64}/128`, 'port', '80', b1.addr, b2.addr);
  });

  t.test('the attach says what it set on each interface', async (t) => {
    for (const i of topo.nodeIfs()) {
      t.equal(sysctl(al(i)), '1', `${i}: accept_local on`);
      t.match(attachOut, new RegExp(`${i}\\b[^\\n]*accept_local`), `${i}: the output says so`);
    }
    t.equal(sysctl(rp(topo.backends[1].nodeIf)), '2', 'the strict interface is loose now');
    t.equal(sysctl(rp(topo.node.clientIf)), '0', 'a loose or unfiltered one is left as it was');
  });

  for (const [mode, proto] of [['http', 'tcp'], ['udp', 'udp']] as const) {
    t.test(`${proto.toUpperCase()}: cluster IP and node port (masqueraded) both answer`, async (t) => {
      const viaVip = client(mode, VIP, 3306, 40);
      t.equal(viaVip.ok, 40, `cluster IP: all answered (errors: ${(viaVip.errors ?? []).join('; ')})`);
      const viaNode = client(mode, topo.node.addr, NODE_PORT, 40);
      t.equal(viaNode.ok, 40, `node port: all answered (errors: ${(viaNode.errors ?? []).join('; ')})`);
      t.same(viaNode.remotes, [`${topo.node.addr}:${NODE_PORT}`], 'every reply from the node address and node port');
      t.same(viaNode.seenBy, { b1: [topo.client.addr], b2: [topo.node.addr] }, 'the other node sees the masquerade (node) address');
    });
  }

  t.test('NAT64: an IPv6 client through the IPv6 VIP reaches the IPv4 backends', async (t) => {
    const r = client('http', VIP64, 80, 20);
    t.equal(r.ok, 20, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
    t.same(r.seenBy, { b1: [topo.node.addr], b2: [topo.node.addr] }, "the backends see the node's IPv4 address");
  });

  t.test('hairpin: a backend reaches its own service through the cluster IP', async (t) => {
    const [b1] = topo.backends;
    const r = client('http', VIP, 3306, 20, b1.ns);
    t.equal(r.ok, 20, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
  });

  t.test('detach puts back what the attach changed', async (t) => {
    t.match(kp('detach', topo.backends[1].nodeIf), /restored .*rp_filter 2 -> 1/, 'the detach says what it restored');
    t.equal(sysctl(rp(topo.backends[1].nodeIf)), '1', 'strict again');
    t.equal(sysctl(al(topo.backends[1].nodeIf)), '0', 'accept_local off again');
    t.equal(sysctl(al(topo.node.clientIf)), '1', 'the interfaces still attached keep theirs');
    kp('detach');
    for (const i of topo.nodeIfs()) t.equal(sysctl(al(i)), '0', `${i}: accept_local off again`);
    t.same(kpJson('show', 'interfaces'), []);
  });
}
