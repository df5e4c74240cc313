// End to end over IPv6 (NAT66): the topology's namespaces get 2001:db8::/32 addresses beside their
// IPv4 ones, and real TCP and UDP clients reach IPv6 backends through an IPv6 cluster IP, a node port
// on the node's IPv6 address (b1 a pod on this node, b2 a backend on another node, masqueraded to the
// node address) and the seed's prefix VIP shape with a node port. Every reply must come from the
// address and port the client dialled. Addresses: 198.18.0.0/15 and 2001:db8::/32 only.
import t from 'tap';
import { writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '2001:db8:100::10';
const NP_VIP = '2001:db8:100::21';
const NODE_PORT = 30966;
const PFX_VIP = '2001:db8:4000::/36'; // the seed's `lb vip 2004::/16 encap nat6 ... node_port 30966`, inside 2001:db8::/32
const PFX_NODE_PORT = 30967;
const remote = (a: string, p: number) => `${a}:${p}`; // how client.js prints a reply's source

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end NAT66 through XDP', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson, watch, inClient } = e2eHarness(t, 'n66', 2, { ipv6: true });
  const node6 = topo.node.addr6!;
  function client(mode: string, host: string, port: number, count: number) {
    const out = topo.exec(topo.client.ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '2000']);
    return JSON.parse(out.trim().split('\n').pop()!);
  }
  const startServers = (b: Backend) => topo.startServers(b);

  t.before(async () => {
    for (const b of topo.backends) await startServers(b);
    const [b1, b2] = topo.backends;
    // As over IPv4 (test/e2e/nodeport.test.ts): a node port reply's source, and a masqueraded
    // packet's, is the node's own address, so the client side and the way to the other node redirect.
    kp('attach', topo.node.clientIf, b2.nodeIf, '--redirect');
    kp('attach', b1.nodeIf);
    kp('vip', 'add', `${VIP}/128`, 'protocol', 'tcp', 'port', '80', 'target', '8080');
    kp('vip', 'add', `${VIP}/128`, 'protocol', 'udp', 'port', '53', 'target', '5353');
    kp('vip', 'add', `${NP_VIP}/128`, 'protocol', 'tcp', 'port', '3306', 'target', '8080', 'nodeport', String(NODE_PORT));
    kp('vip', 'add', `${NP_VIP}/128`, 'protocol', 'udp', 'port', '3306', 'target', '5353', 'nodeport', String(NODE_PORT));
    kp('vip', 'add', PFX_VIP, 'encap', 'nat6', 'port', '6306', 'target', '8080', 'nodeport', String(PFX_NODE_PORT), 'new_len', '1021');
    for (const proto of ['tcp', 'udp']) {
      kp('backend', 'add', `${VIP}/128`, 'protocol', proto, b1.addr6!, b2.addr6!);
      kp('backend', 'add', `${NP_VIP}/128`, 'protocol', proto, 'port', '3306', 'local', b1.addr6!);
      kp('backend', 'add', `${NP_VIP}/128`, 'protocol', proto, 'port', '3306', b2.addr6!);
    }
    kp('backend', 'add', PFX_VIP, 'port', '6306', 'local', b1.addr6!);
    kp('backend', 'add', PFX_VIP, 'port', '6306', b2.addr6!);
  });

  t.test('show vips: IPv6 VIPs, their node port on the node IPv6 address only', async (t) => {
    const vips = kpJson('show', 'vips') as { prefix: string; protocol: string; nodePort?: number; nodeAddresses?: string[] }[];
    const np = vips.find((v) => v.prefix === `${NP_VIP}/128` && v.protocol === 'tcp')!;
    t.match(np, { port: 3306, targetPort: 8080, nodePort: NODE_PORT });
    t.ok(np.nodeAddresses!.includes(node6), `served on ${node6} (${np.nodeAddresses!.join(', ')})`);
    t.ok(np.nodeAddresses!.every((a) => a.includes(':')), 'an IPv6 VIP is served on IPv6 node addresses only');
    t.match(kp('show', 'vips'), new RegExp(`${PFX_VIP.replace(/[/:]/g, '\\$&')}`));
  });

  for (const [mode, proto, port] of [['http', 'tcp', 80], ['udp', 'udp', 53]] as const) {
    t.test(`${proto.toUpperCase()} through the IPv6 cluster IP: all answered from the VIP, load spread`, async (t) => {
      const r = client(mode, VIP, port, 40);
      t.equal(r.ok, 40, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [remote(VIP, port)], 'every reply from the VIP and port dialled');
      t.ok(r.backends.b1 > 3 && r.backends.b2 > 3, `both backends served: ${JSON.stringify(r.backends)}`);
      t.same(r.seenBy, { b1: [topo.client.addr6], b2: [topo.client.addr6] }, 'the backends see the client (a cluster IP is not masqueraded)');
    });
  }

  for (const [mode, proto] of [['http', 'tcp'], ['udp', 'udp']] as const) {
    t.test(`${proto.toUpperCase()} through the node port on the node's IPv6 address: from the node port, the remote backend sees the node`, async (t) => {
      const r = client(mode, node6, NODE_PORT, 30);
      t.equal(r.ok, 30, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [remote(node6, NODE_PORT)], 'every reply from the node address and node port');
      t.ok(r.backends.b1 > 3 && r.backends.b2 > 3, `both backends served: ${JSON.stringify(r.backends)}`);
      t.same(r.seenBy, { b1: [topo.client.addr6], b2: [node6] }, 'the local backend sees the client, the other node the node address (masqueraded)');
    });
  }

  t.test("the seed's prefix VIP shape: an address inside the prefix and the node port reach its backends", async (t) => {
    const inside = '2001:db8:4abc::7';
    const a = client('http', inside, 6306, 20);
    t.equal(a.ok, 20, `through the prefix: all answered (errors: ${(a.errors ?? []).join('; ')})`);
    t.same(a.remotes, [remote(inside, 6306)], 'every reply from the address inside the prefix that was dialled');
    const b = client('http', node6, PFX_NODE_PORT, 20);
    t.equal(b.ok, 20, `through its node port: all answered (errors: ${(b.errors ?? []).join('; ')})`);
    t.same(b.remotes, [remote(node6, PFX_NODE_PORT)]);
  });

  t.test('IPv6 traffic that did not go through a VIP is left alone', async (t) => {
    const r = inClient(`
      const http = require('node:http');
      http.get({ host: process.argv[1], port: 8080, path: '/' }, (res) => {
        const remote = res.socket.remoteAddress + ':' + res.socket.remotePort;
        let b = ''; res.on('data', (c) => b += c);
        res.on('end', () => console.log(JSON.stringify({ remote, body: b })));
      }).on('error', (e) => console.log(JSON.stringify({ error: e.message })));`, topo.backends[0].addr6!);
    t.equal(r.remote, `${topo.backends[0].addr6}:8080`, 'a direct connection to a backend keeps its own address');
    t.match(r.body, /"backend":"b1"/);
  });

  t.test('a long-lived IPv6 connection keeps its backend while backends are added', async (t) => {
    const pause = `/tmp/kpbpf-e2e-pause-${randomBytes(3).toString('hex')}`;
    const c = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '3', '--pause-file', pause]);
    try {
      await c.waitFor('request 0 done');
      for (const [i, name] of [[1, 'b3'], [2, 'b4']] as const) {
        const b = topo.addBackend(name);
        await startServers(b);
        kp('attach', b.nodeIf);
        kp('backend', 'add', `${VIP}/128`, 'protocol', 'tcp', b.addr6!);
        writeFileSync(`${pause}.${i}`, '');
        if (i === 1) await c.waitFor('request 1 done');
      }
      await c.exited;
    } finally {
      for (const i of [1, 2]) rmSync(`${pause}.${i}`, { force: true });
    }
    const r = JSON.parse(c.out().trim());
    t.equal(r.backends.length, 3, `three requests on one connection (${c.err().trim()})`);
    t.equal(new Set(r.backends).size, 1, `the connection stayed on ${r.backends[0]} (${r.backends.join(', ')})`);
    const fresh = client('http', VIP, 80, 60);
    t.equal(fresh.ok, 60);
    t.ok(fresh.backends.b3 > 0 && fresh.backends.b4 > 0, `new connections reach the added backends: ${JSON.stringify(fresh.backends)}`);
  });

  t.test('explain takes and prints IPv6 flows', async (t) => {
    const e = kpJson('explain', `[${topo.client.addr6}]:40000`, `[${VIP}]:80`);
    t.match(e, { vip: `[${VIP}]:80`, protocol: 'tcp' });
    t.match(e.newConnection?.backend, { address: /^2001:db8:[0-9a-f]+::2$/, port: 8080, state: 'active' }, 'the backend a new connection would get: IPv6, with its target port');
    t.match(kp('explain', `[${topo.client.addr6}]:40000`, `[${node6}]:${NODE_PORT}`, 'udp'), /node port/i);
  });

  t.test('counters: the IPv6 VIPs counted their traffic, nothing dropped as malformed', async (t) => {
    const s = kpJson('show', 'stats');
    const tcp = s.vips.find((v: { prefix: string; protocol: string }) => v.prefix === `${VIP}/128` && v.protocol === 'tcp');
    const udp = s.vips.find((v: { prefix: string; protocol: string }) => v.prefix === `${VIP}/128` && v.protocol === 'udp');
    t.ok(tcp.counters.firstPkts >= 100, `TCP first packets (${tcp.counters.firstPkts})`);
    t.equal(udp.counters.replyPkts, 40, 'UDP: the 40 replies SNATed');
    t.equal(tcp.counters.noServerPkts, 0);
  });
  t.test('a config file: an IPv6 LoadBalancer IP with source ranges and an external IP, masqueraded to masquerade_address6', async (t) => {
    const [b1, b2] = topo.backends;
    const LB6 = '2001:db8:100::30';
    const EXT6 = '2001:db8:100::31';
    const file = `/tmp/kpbpf-e2e-n66-${randomBytes(3).toString('hex')}.json`;
    const apply = (ranges: string[]) => {
      writeFileSync(file, JSON.stringify({
        conf: { masquerade_address6: node6 },
        vips: [
          { prefix: LB6, port: 443, target_port: 8080, type: 'loadbalancer', source_ranges: ranges, backends: [{ address: b1.addr6, local: true }, b2.addr6] },
          { prefix: EXT6, port: 8443, target_port: 8080, type: 'externalip', backends: [{ address: b1.addr6, local: true }, b2.addr6] },
        ],
      }));
      return kp('apply', '-f', file);
    };
    try {
      apply([`${topo.client.addr6}/128`, '2001:db8:9::/48']);
      t.match(kpJson('show', 'conf'), { masqueradeAddress6: node6 });
      for (const [vip, port] of [[LB6, 443], [EXT6, 8443]] as const) {
        const r = client('http', vip, port, 24); // both backends get some: all 24 on one is 1 in 8 million
        t.equal(r.ok, 24, `${vip}: all connect (errors: ${(r.errors ?? []).join('; ')})`);
        t.same(r.remotes, [remote(vip, port)], `${vip}: every reply from the address dialled`);
        t.same(r.seenBy, { b1: [topo.client.addr6], b2: [node6] }, `${vip}: the other node's backend sees masquerade_address6`);
      }
      apply(['2001:db8:9::/48']);
      const before = kpJson('show', 'stats').global.drop_src_range;
      const denied = topo.exec(topo.client.ns, [process.execPath, CLIENT, 'http', '--vip', LB6, '--port', '443', '--count', '3', '--timeout', '700']);
      t.equal(JSON.parse(denied.trim().split('\n').pop()!).ok, 0, 'from outside the ranges: none connects');
      t.ok(kpJson('show', 'stats').global.drop_src_range - before >= 3, 'each SYN dropped and counted');
    } finally {
      rmSync(file, { force: true });
    }
  });
}
