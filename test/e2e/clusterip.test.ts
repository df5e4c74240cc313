// End to end: client / node (XDP attached) / backends in network namespaces, real TCP and UDP traffic
// through a ClusterIP VIP, the kpbpf CLI driving the live data plane. Addresses: 198.18.0.0/15 only.
import t from 'tap';
import { writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.10';

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end ClusterIP through XDP', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson, watch } = e2eHarness(t, 'e2e', 2);
  function client(mode: string, port: number, count: number, extra: string[] = []) {
    const out = topo.exec(topo.client.ns, [process.execPath, CLIENT, mode, '--vip', VIP, '--port', String(port), '--count', String(count), '--timeout', '2000', ...extra]);
    return JSON.parse(out.trim().split('\n').pop()!);
  }

  const startServers = (b: Backend) => topo.startServers(b);

  t.before(async () => {
    for (const b of topo.backends) await startServers(b);
    kp('attach', ...topo.nodeIfs());
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'tcp', 'port', '80', 'target', '8080');
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'udp', 'port', '53', 'target', '5353');
    for (const proto of ['tcp', 'udp']) {
      kp('backend', 'add', `${VIP}/32`, 'protocol', proto, ...topo.backends.map((b) => b.addr));
    }
  });

  t.test('TCP: every connection completes, replies come from the VIP, load spreads', async (t) => {
    const r = client('http', 80, 60);
    t.equal(r.ok, 60, `all 60 connections completed (errors: ${r.errors.join('; ')})`);
    t.same(r.remotes, [`${VIP}:80`], 'every reply came from VIP:80');
    t.ok(r.backends.b1 > 5 && r.backends.b2 > 5, `both backends served: ${JSON.stringify(r.backends)}`);
  });

  let udpFlows = 0;
  t.test('UDP: every datagram is answered from the VIP, load spreads', async (t) => {
    const r = client('udp', 53, 40);
    udpFlows = r.flows;
    t.equal(r.ok, 40, 'all 40 datagrams answered');
    t.same(r.remotes, [`${VIP}:53`], 'every reply came from VIP:53');
    t.ok(r.backends.b1 > 3 && r.backends.b2 > 3, `both backends served: ${JSON.stringify(r.backends)}`);
  });

  t.test('counters match the traffic', async (t) => {
    const s = kpJson('show', 'stats');
    const tcp = s.vips.find((v: { protocol: string }) => v.protocol === 'tcp');
    const udp = s.vips.find((v: { protocol: string }) => v.protocol === 'udp');
    t.equal(udp.counters.firstPkts, udpFlows, `UDP: one first session packet per flow (${udpFlows} source ports for 40 datagrams)`);
    t.equal(udp.counters.existingPkts, 40 - udpFlows, 'UDP: a datagram from a source port used before is an existing session');
    t.equal(udp.counters.replyPkts, 40, 'UDP: 40 replies SNATed');
    t.ok(tcp.counters.firstPkts >= 60, `TCP: at least one first packet per connection (${tcp.counters.firstPkts})`);
    t.ok(tcp.counters.existingPkts >= 60 * 3, `TCP: handshake, request and FIN packets hit existing sessions (${tcp.counters.existingPkts})`);
    t.equal(tcp.counters.noServerPkts, 0, 'TCP: no packet without a server');
    for (const v of [tcp, udp]) {
      const fwd = v.counters.firstPkts + v.counters.existingPkts + v.counters.untrackedPkts;
      const perBackend = v.backends.reduce((a: number, b: { packets: number }) => a + b.packets, 0);
      t.equal(perBackend, fwd, `${v.protocol}: per-backend packets add up to the VIP's forwarded packets`);
    }
    const fwdAll = [tcp, udp].reduce((a, v) => a + v.counters.firstPkts + v.counters.existingPkts + v.counters.untrackedPkts, 0);
    t.equal(s.global.dnat, fwdAll, 'global DNAT count equals the VIPs forwarded packets');
    t.equal(s.global.snat, tcp.counters.replyPkts + udp.counters.replyPkts, 'global SNAT count equals the VIPs reply packets');
  });

  t.test('traffic that did not go through a VIP is left alone', async (t) => {
    const out = topo.exec(topo.client.ns, [process.execPath, '-e', `
      const http = require('node:http');
      http.get({ host: '198.18.1.2', port: 8080, path: '/' }, (res) => {
        const remote = res.socket.remoteAddress + ':' + res.socket.remotePort;
        let b = ''; res.on('data', (c) => b += c);
        res.on('end', () => console.log(JSON.stringify({ remote, body: b })));
      }).on('error', (e) => console.log(JSON.stringify({ error: e.message })));`]);
    const r = JSON.parse(out);
    t.equal(r.remote, '198.18.1.2:8080', 'a direct connection to a backend keeps its own address');
    t.match(r.body, /"backend":"b1"/);
  });

  t.test('a long-lived connection keeps its backend while backends are added', async (t) => {
    const pause = `/tmp/kpbpf-e2e-pause-${randomBytes(3).toString('hex')}`;
    const c = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '3', '--pause-file', pause]);
    const { waitFor, exited: done } = c;
    try {
      await waitFor('request 0 done');
      const b3 = topo.addBackend('b3');
      await startServers(b3);
      kp('attach', b3.nodeIf);
      kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', b3.addr);
      writeFileSync(`${pause}.1`, '');
      await waitFor('request 1 done');
      const b4 = topo.addBackend('b4');
      await startServers(b4);
      kp('attach', b4.nodeIf);
      kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', b4.addr);
      writeFileSync(`${pause}.2`, '');
      await done;
    } finally {
      for (const i of [1, 2]) rmSync(`${pause}.${i}`, { force: true });
    }
    const r = JSON.parse(c.out().trim());
    t.equal(r.backends.length, 3, 'three requests on one connection');
    t.equal(new Set(r.backends).size, 1, `the connection stayed on ${r.backends[0]} (${r.backends.join(', ')})`);
    const after = client('http', 80, 80);
    t.equal(after.ok, 80, 'new connections all complete');
    t.ok(after.backends.b3 > 0 && after.backends.b4 > 0, `new connections reach the new backends: ${JSON.stringify(after.backends)}`);
  });

  t.test('a drained backend keeps its connections and gets no new ones', async (t) => {
    const pause = `/tmp/kpbpf-e2e-drain-${randomBytes(3).toString('hex')}`;
    const c = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '2', '--pause-file', pause]);
    const done = c.exited;
    await c.waitFor('request 0 done');
    // Which backend has the connection? Drain exactly that one.
    const vips = kpJson('show', 'backends') as { protocol: string; backends: { address: string }[] }[];
    const tcpBackends = vips.find((v) => v.protocol === 'tcp')!.backends.map((b) => b.address);
    const first = c.err().includes('request 0 done');
    t.ok(first, 'first request on the long-lived connection done');
    const flows = kpJson('show', 'flows', '--limit', '10000') as { backend: string; idleSeconds: number; vip: string }[];
    const live = flows.filter((f) => f.vip === `${VIP}:80`).sort((a, b) => a.idleSeconds - b.idleSeconds)[0];
    t.ok(live, `a TCP flow of the connection is in the flow table (${flows.length} flows)`);
    const drained = live.backend.split(':')[0];
    t.ok(tcpBackends.includes(drained), `the connection's backend ${drained} is a backend of the VIP`);
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'tcp', drained);
    writeFileSync(`${pause}.1`, '');
    await done;
    rmSync(`${pause}.1`, { force: true });
    const r = JSON.parse(c.out().trim());
    t.equal(new Set(r.backends).size, 1, `the drained backend kept its connection (${r.backends.join(', ')})`);
    const name = topo.backends.find((b) => b.addr === drained)!.name;
    const after = client('http', 80, 60);
    t.equal(after.ok, 60, 'new connections all complete');
    t.notOk(after.backends[name], `no new connection reached the drained backend ${name}: ${JSON.stringify(after.backends)}`);
    const view = (kpJson('show', 'backends') as { protocol: string; backends: { address: string; state: string }[] }[]).find((v) => v.protocol === 'tcp')!;
    const state = view.backends.find((b) => b.address === drained)?.state;
    t.ok(state === 'draining' || state === undefined, `the backend is draining or already collected (${state})`);
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', drained); // back for the next tests
  });

  t.test('XDP_REDIRECT path: interfaces allowed to redirect carry the traffic', async (t) => {
    const before = kpJson('show', 'stats').global.tx_redirect;
    kp('attach', ...topo.nodeIfs(), '--redirect');
    const ifs = kpJson('show', 'interfaces') as { ifname: string; redirect: boolean }[];
    t.ok(ifs.every((i) => i.redirect), 'every node interface is a redirect target');
    const r = client('http', 80, 30);
    t.equal(r.ok, 30, `all connections complete over the redirect path (errors: ${r.errors.join('; ')})`);
    t.same(r.remotes, [`${VIP}:80`], 'replies still come from the VIP');
    const after = kpJson('show', 'stats').global.tx_redirect;
    t.ok(after - before >= 30 * 4, `packets were redirected in XDP (${after - before})`);
  });

  t.test('attach is all or nothing: an unknown interface attaches none', async (t) => {
    const before = kpJson('show', 'interfaces');
    const b = topo.addBackend('b9');
    let err = '';
    try {
      kp('attach', b.nodeIf, 'kpnosuch0');
    } catch (e) {
      err = String((e as { stderr?: string }).stderr);
    }
    t.match(err, /interface 'kpnosuch0' not found/);
    t.same(kpJson('show', 'interfaces'), before, `${b.nodeIf} was not attached either`);
  });

  t.test('a VIP without backends: no server configured', async (t) => {
    kp('vip', 'add', '198.18.100.11/32', 'protocol', 'tcp', 'port', '80', 'target', '8080');
    const out = topo.exec(topo.client.ns, [process.execPath, CLIENT, 'http', '--vip', '198.18.100.11', '--port', '80', '--count', '1', '--timeout', '1500']);
    t.equal(JSON.parse(out).ok, 0, 'the connection does not complete');
    const v = (kpJson('show', 'stats').vips as { prefix: string; counters: { noServerPkts: number } }[]).find((x) => x.prefix === '198.18.100.11/32')!;
    t.ok(v.counters.noServerPkts >= 1, `counted as no server configured (${v.counters.noServerPkts})`);
  });
}
