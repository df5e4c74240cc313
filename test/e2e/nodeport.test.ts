// End to end: the design card's NodePort command, with its address swapped for one in 198.18.0.0/15
// (`kpbpf vip add 90.1.2.1/32 port 3306 target 3307 nodeport 30964`), and real TCP and UDP traffic
// through both the cluster IP and the node's address on the node port. b1 stands for a pod on this
// node (marked local), b2 for a backend on another node: under externalTrafficPolicy cluster, node port
// connections to b2 are masqueraded to the node address, as kube-proxy does, and b1 sees the client.
import t from 'tap';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.21';
const NODE_PORT = 30964;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end NodePort through XDP', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson } = e2eHarness(t, 'np', 2);
  function client(mode: string, host: string, port: number, count: number) {
    const out = topo.exec(topo.client.ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '2000']);
    return JSON.parse(out.trim().split('\n').pop()!);
  }

  t.before(async () => {
    // The servers listen on the target port 3307 (TCP and UDP).
    for (const b of topo.backends as Backend[]) await topo.startServers(b, { tcp: 3307, udp: 3307 });
    // A reply's new source is the node's own address: handed to the kernel it would be dropped as a
    // martian (accept_local is off), so the interface toward clients is a redirect target (README:
    // NodePort). The backends' side is attached with the seed's spelling, which attaches without.
    // A masqueraded packet's source is the node's address too, so the way to the other node (b2's side)
    // is a redirect target; b1's side (a pod's veth) is attached with the seed's spelling, without.
    const [b1, b2] = topo.backends;
    kp('attach', topo.node.clientIf, b2.nodeIf, '--redirect');
    kp('set', 'interface', 'nat4', 'in', b1.nodeIf);
    kp('vip', 'add', `${VIP}/32`, 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT));
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'udp', 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT));
    for (const proto of ['tcp', 'udp']) {
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', '3306', 'local', b1.addr);
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, 'port', '3306', b2.addr);
    }
  });

  t.test("the seed's set interface nat4 in attached the local pod's side", async (t) => {
    const ifs = kpJson('show', 'interfaces') as { ifname: string; redirect: boolean }[];
    t.same(ifs.map((i) => i.ifname).sort(), topo.nodeIfs().sort(), 'every node interface attached');
    t.same(ifs.filter((i) => i.redirect).map((i) => i.ifname).sort(), [topo.node.clientIf, topo.backends[1].nodeIf].sort(), 'the client side and the way to the other node are redirect targets');
  });

  t.test('the command as the card writes it: a cluster IP with a node port on every node address', async (t) => {
    const vips = kpJson('show', 'vips');
    const tcp = vips.find((v: { protocol: string }) => v.protocol === 'tcp');
    t.match(tcp, { prefix: `${VIP}/32`, port: 3306, targetPort: 3307, nodePort: NODE_PORT });
    t.ok(tcp.nodeAddresses.includes(topo.node.addr), `served on the node's client-side address (${tcp.nodeAddresses.join(', ')})`);
    t.match(kp('show', 'vips'), new RegExp(`nodeport ${NODE_PORT} on [^ ]*${topo.node.addr.replace(/\./g, '\\.')}`));
  });

  for (const [mode, proto] of [['http', 'tcp'], ['udp', 'udp']] as const) {
    t.test(`${proto.toUpperCase()}: through the cluster IP and through node address:node port, the same backends`, async (t) => {
      const viaVip = client(mode, VIP, 3306, 30);
      t.equal(viaVip.ok, 30, `cluster IP: all answered (errors: ${(viaVip.errors ?? []).join('; ')})`);
      t.same(viaVip.remotes, [`${VIP}:3306`], 'cluster IP: every reply from VIP:3306');
      const viaNode = client(mode, topo.node.addr, NODE_PORT, 30);
      t.equal(viaNode.ok, 30, `node port: all answered (errors: ${(viaNode.errors ?? []).join('; ')})`);
      t.same(viaNode.remotes, [`${topo.node.addr}:${NODE_PORT}`], 'node port: every reply from the node address and node port');
      t.ok(viaNode.backends.b1 > 3 && viaNode.backends.b2 > 3, `node port: both backends served: ${JSON.stringify(viaNode.backends)}`);
      t.same(viaNode.seenBy, { b1: [topo.client.addr], b2: [topo.node.addr] }, 'node port: the local backend sees the client, the other node the masquerade (node) address');
      t.same(viaVip.seenBy, { b1: [topo.client.addr], b2: [topo.client.addr] }, 'cluster IP: never masqueraded');
    });
  }

  t.test('a LoadBalancer IP with source ranges: the allowed client connects, a denied one is dropped and counted', async (t) => {
    const LB = '198.18.100.22';
    const allowed = `${topo.client.addr}/32`;
    kp('vip', 'add', `${LB}/32`, 'port', '443', 'target', '3307', 'type', 'loadbalancer', 'source_ranges', `${allowed},198.18.9.0/24`);
    kp('backend', 'add', `${LB}/32`, 'port', '443', 'local', topo.backends[0].addr);
    kp('backend', 'add', `${LB}/32`, 'port', '443', topo.backends[1].addr);
    const ok = client('http', LB, 443, 24); // both backends get some: all 24 on one is 1 in 8 million
    t.equal(ok.ok, 24, `from ${topo.client.addr}, inside the ranges: all connect (errors: ${(ok.errors ?? []).join('; ')})`);
    t.same(ok.remotes, [`${LB}:443`]);
    const masq = kpJson('show', 'conf').masqueradeAddress;
    t.same(ok.seenBy, { b1: [topo.client.addr], b2: [masq] }, `the other node's backend sees the masquerade address (${masq})`);
    // The client's address is no longer in the ranges: new connections are dropped in XDP.
    kp('vip', 'add', `${LB}/32`, 'port', '443', 'target', '3307', 'type', 'loadbalancer', 'source_ranges', '198.18.9.0/24');
    const before = kpJson('show', 'stats').global.drop_src_range;
    const denied = topo.exec(topo.client.ns, [process.execPath, CLIENT, 'http', '--vip', LB, '--port', '443', '--count', '3', '--timeout', '700']);
    const r = JSON.parse(denied.trim().split('\n').pop()!);
    t.equal(r.ok, 0, 'from outside the ranges: none connects');
    t.ok(kpJson('show', 'stats').global.drop_src_range - before >= 3, 'each SYN dropped and counted (drop_src_range)');
    t.match(kpJson('show', 'vips').find((v: { prefix: string }) => v.prefix === `${LB}/32`), { type: 'loadbalancer', sourceRanges: ['198.18.9.0/24'] });
  });

  t.test('externalTrafficPolicy local: through the node port only the local backend, which sees the client address', async (t) => {
    const [b1, b2] = topo.backends;
    kp('vip', 'add', `${VIP}/32`, 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT), 'etp', 'local');
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', 'port', '3306', 'local', b1.addr);
    const viaNode = client('http', topo.node.addr, NODE_PORT, 20);
    t.equal(viaNode.ok, 20, `all connect (errors: ${(viaNode.errors ?? []).join('; ')})`);
    t.same(viaNode.backends, { [b1.name]: 20 }, 'every connection on the local backend');
    t.same(viaNode.seenAs, [topo.client.addr], 'the backend saw the client address');
    const viaVip = client('http', VIP, 3306, 30);
    t.ok(viaVip.backends[b1.name] > 3 && viaVip.backends[b2.name] > 3, `the cluster IP keeps both: ${JSON.stringify(viaVip.backends)}`);
    kp('vip', 'add', `${VIP}/32`, 'port', '3306', 'target', '3307', 'nodeport', String(NODE_PORT));
  });

  t.test('the node port shares the VIP counters and backends', async (t) => {
    const s = kpJson('show', 'stats');
    t.ok(s.global.masq >= 10, `masqueraded connections counted (${s.global.masq})`);
    t.equal(s.global.drop_masq_ports, 0);
    const flows = kpJson('show', 'flows', '--limit', '10000') as { backend: string; masqueradedAs?: string }[];
    const masqed = flows.filter((f) => f.masqueradedAs);
    t.ok(masqed.length > 0, 'show flows lists masqueraded connections');
    t.ok(
      masqed.every((f) => {
        const m = /^198\.18\.0\.1:(\d+)$/.exec(f.masqueradedAs!);
        return f.backend.startsWith(`${topo.backends[1].addr}:`) && m !== null && Number(m[1]) >= 1024 && Number(m[1]) <= 29999;
      }),
      `each to the other node's backend, from the node address and a masquerade port: ${JSON.stringify(masqed.slice(0, 3))}`,
    );
    const tcp = s.vips.find((v: { protocol: string }) => v.protocol === 'tcp');
    t.ok(tcp.counters.firstPkts >= 60, `first packets of 30 + 30 connections on one VIP (${tcp.counters.firstPkts})`);
    t.equal(tcp.counters.noServerPkts, 0);
  });

  t.test('vip add without nodeport removes the node port; the cluster IP stays', async (t) => {
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'udp', 'port', '3306', 'target', '3307');
    const udp = kpJson('show', 'vips').find((v: { protocol: string }) => v.protocol === 'udp');
    t.notOk(udp.nodePort, 'no node port any more');
    const viaVip = client('udp', VIP, 3306, 10);
    t.equal(viaVip.ok, 10, 'the cluster IP still answers');
    const viaNode = client('udp', topo.node.addr, NODE_PORT, 3);
    t.equal(viaNode.ok, 0, 'the node port no longer does (nothing listens on the node)');
  });

  t.test('set interface nat4 in <if> del detaches that interface only', async (t) => {
    const b = topo.backends[1];
    kp('set', 'interface', 'nat4', 'in', b.nodeIf, 'del');
    const ifs = (kpJson('show', 'interfaces') as { ifname: string }[]).map((i) => i.ifname);
    t.notOk(ifs.includes(b.nodeIf), `${b.nodeIf} detached`);
    t.ok(ifs.includes(topo.node.clientIf), 'the others stay');
  });
}
