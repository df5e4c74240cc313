// End to end across families: NAT46 (an IPv4 cluster IP and node port with IPv6 backends) and NAT64
// (an IPv6 cluster IP and node port with IPv4 backends), configured by a file through `kpbpf apply`.
// Real TCP and UDP clients in the client namespace must get every reply from the address and port
// they dialled, load spread over both backends, while the backends see the translated source: the
// client's IPv4 address inside the configured NAT46 prefix, or the node's IPv4 masquerade address.
// Addresses: 198.18.0.0/15 and 2001:db8::/32 only (the NAT46 prefix is 2001:db8:ff46::/96).
import t from 'tap';
import { writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP46 = '198.18.100.46';
const VIP64 = '2001:db8:100::64';
const NP46 = 30946;
const NP64 = 30964;
const PREFIX46 = '2001:db8:ff46::';
const remote = (a: string, p: number) => `${a}:${p}`; // how client.js prints a reply's source
const embed = (prefix: string, v4: string) => {
  const [a, b, c, d] = v4.split('.').map(Number);
  return `${prefix}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
};

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end NAT46 and NAT64 through XDP', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, kp, kpJson, watch, inClient } = e2eHarness(t, 'n46', 2, { ipv6: true });
  const file = `/tmp/kpbpf-e2e-n46-${randomBytes(3).toString('hex')}.json`;
  t.teardown(() => rmSync(file, { force: true }));
  function client(mode: string, host: string, port: number, count: number) {
    const out = topo.exec(topo.client.ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', '2000']);
    return JSON.parse(out.trim().split('\n').pop()!);
  }
  const config = (extra6: Backend[] = [], extra4: Backend[] = []) => {
    const [b1, b2] = topo.backends;
    const six = [b1, b2, ...extra6].map((b) => b.addr6!);
    const four = [b1, b2, ...extra4].map((b) => b.addr);
    return {
      conf: { masquerade_address: topo.node.addr, nat46_prefix: `${PREFIX46}/96` },
      vips: [
        { prefix: VIP46, protocol: 'tcp', port: 80, target_port: 8080, node_port: NP46, backends: six },
        { prefix: VIP46, protocol: 'udp', port: 53, target_port: 5353, node_port: NP46, backends: six },
        { prefix: VIP64, protocol: 'tcp', port: 80, target_port: 8080, encap: 'nat64', node_port: NP64, backends: four },
        { prefix: VIP64, protocol: 'udp', port: 53, target_port: 5353, encap: 'nat4', node_port: NP64, backends: four },
        // nothing listens on 5999: the backends answer ICMP port unreachable
        { prefix: VIP46, protocol: 'udp', port: 54, target_port: 5999, backends: six },
        { prefix: VIP64, protocol: 'udp', port: 54, target_port: 5999, backends: four },
      ],
    };
  };
  const apply = (c: object) => {
    writeFileSync(file, JSON.stringify(c));
    return kp('apply', '-f', file);
  };

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    const [b1, b2] = topo.backends;
    // As in test/e2e/nat66.test.ts: the client side and the way to the other node redirect.
    kp('attach', topo.node.clientIf, b2.nodeIf, '--redirect');
    // A NAT64 packet comes from the node's own IPv4 address. The first one toward a backend whose
    // neighbour is not resolved yet cannot be redirected and goes to the kernel, which drops a packet
    // with a local source as a martian unless accept_local is on where it came in (README: NAT46 and
    // NAT64); forwarded, it resolves the neighbour for the packets after it.
    // The same goes for an error kpbpf sends a backend from the node address (fragmentation needed
    // about a NAT64 reply) through the kernel: on every interface.
    for (const i of topo.nodeIfs()) topo.exec(topo.node.ns, ['sysctl', '-qw', `net.ipv4.conf.${i}.accept_local=1`]);
    kp('attach', b1.nodeIf);
    apply(config());
  });

  t.test('show: the VIPs say encap nat46 and nat64, conf the NAT46 prefix', async (t) => {
    const vips = kpJson('show', 'vips') as { prefix: string; protocol: string; port: number; encap?: string }[];
    t.same(vips.map((v) => [v.prefix, v.protocol, v.port, v.encap]).sort(), [
      [`${VIP64}/128`, 'tcp', 80, 'nat64'],
      [`${VIP64}/128`, 'udp', 53, 'nat64'],
      [`${VIP64}/128`, 'udp', 54, 'nat64'],
      [`${VIP46}/32`, 'tcp', 80, 'nat46'],
      [`${VIP46}/32`, 'udp', 53, 'nat46'],
      [`${VIP46}/32`, 'udp', 54, 'nat46'],
    ].sort());
    t.match(kp('show', 'vips'), /encap nat46/);
    t.match(kpJson('show', 'conf'), { nat46Prefix: `${PREFIX46}/96`, masqueradeAddress: topo.node.addr });
    t.match(apply(config()), /no changes|nothing to do|0 changes/i, 'the same file again changes nothing');
  });

  const seen46 = () => embed(PREFIX46, topo.client.addr);
  for (const [mode, proto, port] of [['http', 'tcp', 80], ['udp', 'udp', 53]] as const) {
    t.test(`NAT46 ${proto.toUpperCase()} through the IPv4 cluster IP to IPv6 backends`, async (t) => {
      const r = client(mode, VIP46, port, 40);
      t.equal(r.ok, 40, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [remote(VIP46, port)], 'every reply from the IPv4 VIP and port dialled');
      t.ok(r.backends.b1 > 3 && r.backends.b2 > 3, `both backends served: ${JSON.stringify(r.backends)}`);
      t.same(r.seenBy, { b1: [seen46()], b2: [seen46()] }, 'the backends see the client inside the NAT46 prefix');
    });

    t.test(`NAT64 ${proto.toUpperCase()} through the IPv6 cluster IP to IPv4 backends`, async (t) => {
      const r = client(mode, VIP64, port, 40);
      t.equal(r.ok, 40, `all answered (errors: ${(r.errors ?? []).join('; ')})`);
      t.same(r.remotes, [remote(VIP64, port)], 'every reply from the IPv6 VIP and port dialled');
      t.ok(r.backends.b1 > 3 && r.backends.b2 > 3, `both backends served: ${JSON.stringify(r.backends)}`);
      t.same(r.seenBy, { b1: [topo.node.addr], b2: [topo.node.addr] }, 'the backends see the node IPv4 masquerade address');
    });
  }

  for (const [mode, proto] of [['http', 'tcp'], ['udp', 'udp']] as const) {
    t.test(`${proto.toUpperCase()} through the node ports: NAT46 on the node IPv4 address, NAT64 on the IPv6 one`, async (t) => {
      const a = client(mode, topo.node.addr, NP46, 20);
      t.equal(a.ok, 20, `NAT46 node port: all answered (errors: ${(a.errors ?? []).join('; ')})`);
      t.same(a.remotes, [remote(topo.node.addr, NP46)]);
      const b = client(mode, topo.node.addr6!, NP64, 20);
      t.equal(b.ok, 20, `NAT64 node port: all answered (errors: ${(b.errors ?? []).join('; ')})`);
      t.same(b.remotes, [remote(topo.node.addr6!, NP64)]);
    });
  }

  t.test('a backend\'s port unreachable reaches the client in its own family: a connected UDP socket gets ECONNREFUSED', async (t) => {
    for (const vip of [VIP46, VIP64]) {
      const r = inClient(`
        const s = require('node:dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');
        const started = Date.now();
        const done = (o) => { console.log(JSON.stringify({ ...o, ms: Date.now() - started })); process.exit(0); };
        setTimeout(() => done({ error: 'no answer' }), 3000);
        s.on('error', (e) => done({ error: e.code }));
        s.connect(54, process.argv[1], () => { s.send('x'); setTimeout(() => s.send('y'), 300); });`, vip);
      t.equal(r.error, 'ECONNREFUSED', `${vip}: the ICMP error was translated back (${JSON.stringify(r)})`);
    }
  });

  t.test('explain: a cross-family VIP, its translation and the backend of the other family', async (t) => {
    const e46 = kpJson('explain', `${topo.client.addr}:40000`, `${VIP46}:80`);
    t.match(e46, { match: { vip: `${VIP46}/32`, encap: 'nat46' }, newConnection: { backend: { address: /^2001:db8:/, port: 8080 } } });
    t.ok(e46.notes.some((n: string) => n.includes(seen46())), `the client's address in the prefix: ${e46.notes.join('; ')}`);
    const e64 = kpJson('explain', `[${topo.client.addr6}]:40000`, `[${VIP64}]:80`);
    t.match(e64, { match: { encap: 'nat64' }, newConnection: { backend: { address: /^198\.18\./ } } });
    t.match(kp('explain', `[${topo.client.addr6}]:40000`, `[${topo.node.addr6}]:${NP64}`), /nat64, node port match[\s\S]*NAT64: the packet is translated to IPv4, from masquerade_address 198\.18\.0\.1/);
  });

  t.test('a long NAT64 connection keeps its backend while backends are added', async (t) => {
    const pause = `/tmp/kpbpf-e2e-pause-${randomBytes(3).toString('hex')}`;
    const c = watch([CLIENT, 'keepalive', '--vip', VIP64, '--port', '80', '--count', '3', '--pause-file', pause]);
    const added: Backend[] = [];
    try {
      await c.waitFor('request 0 done');
      for (const [i, name] of [[1, 'b3'], [2, 'b4']] as const) {
        const b = topo.addBackend(name);
        await topo.startServers(b);
        kp('attach', b.nodeIf);
        added.push(b);
        apply(config([], added));
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
    const fresh = client('http', VIP64, 80, 60);
    t.equal(fresh.ok, 60);
    t.ok(fresh.backends.b3 > 0 && fresh.backends.b4 > 0, `new connections reach the added backends: ${JSON.stringify(fresh.backends)}`);
  });

  t.test('path MTU across families: a DF datagram too big once translated gets "fragmentation needed", 20 bytes less', async (t) => {
    const links = topo.backends.slice(0, 2).map((b) => b.nodeIf);
    for (const l of links) topo.exec(topo.node.ns, ['ip', 'link', 'set', l, 'mtu', '1400']);
    try {
      await new Promise((r) => setTimeout(r, 1200)); // the next-hop cache (KP_NEXTHOP_TTL_MS) learns the new MTU
      const before = kpJson('show', 'stats').global.icmp_too_big ?? 0;
      // Linux sets DF on UDP (ip_no_pmtu_disc 0): 1450 + 28 bytes fit the client's link, not the backends' once IPv6.
      const r = inClient(`
        const s = require('node:dgram').createSocket('udp4');
        s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });
        s.connect(53, process.argv[1], () => { s.send(Buffer.alloc(1450, 1)); setTimeout(() => { console.log(JSON.stringify({ sent: true })); process.exit(0); }, 500); });`, VIP46);
      t.ok(r.sent || r.error === 'EMSGSIZE', `sent (${JSON.stringify(r)})`);
      t.ok((kpJson('show', 'stats').global.icmp_too_big ?? 0) > before, 'answered icmp_too_big');
      t.match(topo.exec(topo.client.ns, ['ip', 'route', 'get', VIP46]), /mtu 1380/, "the client's kernel learnt the path MTU: the backends' 1400 less the 20 bytes IPv6 adds");
    } finally {
      for (const l of links) topo.exec(topo.node.ns, ['ip', 'link', 'set', l, 'mtu', '1500']);
    }
  });

  t.test('path MTU across families, the other way: a NAT64 reply too big once IPv6 teaches the IPv4 backend 20 bytes less', async (t) => {
    topo.exec(topo.node.ns, ['ip', 'link', 'set', topo.node.clientIf, 'mtu', '1400']);
    topo.exec(topo.client.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
    // The error goes to the backend from the node address, through the kernel where its way is not a
    // redirect target: accept_local there too, on the backends added since (b3, b4).
    for (const i of topo.nodeIfs()) topo.exec(topo.node.ns, ['sysctl', '-qw', `net.ipv4.conf.${i}.accept_local=1`]);
    try {
      await new Promise((r) => setTimeout(r, 1200)); // the next-hop cache learns the new MTU
      const before = kpJson('show', 'stats').global.icmp_too_big ?? 0;
      // 1340 bytes fit the client's 1400-byte link; the echo (a few bytes more) is a DF IPv4
      // datagram of about 1390 bytes, 1410 once IPv6.
      inClient(`
        const s = require('node:dgram').createSocket('udp6');
        s.on('error', () => {});
        s.connect(53, process.argv[1], () => { s.send(Buffer.alloc(1340, 1)); setTimeout(() => { console.log('{}'); process.exit(0); }, 500); });`, VIP64);
      t.ok((kpJson('show', 'stats').global.icmp_too_big ?? 0) > before, 'answered icmp_too_big, to the backend');
      const learnt = topo.backends.map((b) => topo.exec(b.ns, ['ip', 'route', 'get', topo.node.addr]));
      t.ok(learnt.some((r) => /mtu 1380/.test(r)), `the backend that answered learnt 1380 toward the node address: ${learnt.map((r) => r.trim()).join(' | ')}`);
    } finally {
      topo.exec(topo.node.ns, ['ip', 'link', 'set', topo.node.clientIf, 'mtu', '1500']);
      topo.exec(topo.client.ns, ['ip', 'link', 'set', 'eth0', 'mtu', '1500']);
    }
  });

  t.test('a 4000-byte UDP datagram across families, fragmented both ways (links with room for the fragment header)', async (t) => {
    // IPv4 -> IPv6 adds 28 bytes to a fragment (header and fragment header) and IPv6 routers do not
    // fragment, so the IPv6 side needs the room: links of 1600 bytes, IPv4 routes locked at 1500.
    const [b1, b2] = topo.backends;
    const gw = (b: Backend) => b.addr.replace(/\.2$/, '.1');
    const setMtu = (mtu: number) => {
      for (const l of [topo.node.clientIf, b1.nodeIf, b2.nodeIf]) topo.exec(topo.node.ns, ['ip', 'link', 'set', l, 'mtu', String(mtu)]);
      for (const ns of [topo.client.ns, b1.ns, b2.ns]) topo.exec(ns, ['ip', 'link', 'set', 'eth0', 'mtu', String(mtu)]);
      const lock = mtu > 1500 ? ['mtu', 'lock', '1500'] : [];
      topo.exec(topo.client.ns, ['ip', 'route', 'replace', '198.18.100.0/24', 'via', topo.node.addr, ...lock]);
      for (const b of [b1, b2]) topo.exec(b.ns, ['ip', 'route', 'replace', 'default', 'via', gw(b), ...lock]);
    };
    setMtu(1600);
    try {
      await new Promise((r) => setTimeout(r, 1200)); // the next-hop cache learns the new MTU
      const before = kpJson('show', 'stats').global;
      for (const vip of [VIP46, VIP64]) {
        for (let i = 0; i < 2; i++) {
          const g0 = kpJson('show', 'stats').global as Record<string, number>;
          const r = inClient(`
            const s = require('node:dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');
            const msg = 'x'.repeat(4000);
            const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
            setTimeout(() => done({ error: 'timeout' }), 3000);
            s.on('message', (m, r) => done({ from: r.address + ':' + r.port, length: m.length, intact: m.toString().endsWith(':' + msg) }));
            s.send(msg, 53, process.argv[1]);`, vip);
          const g1 = kpJson('show', 'stats').global as Record<string, number>;
          const moved = Object.entries(g1).filter(([k, v]) => v !== (g0[k] ?? 0)).map(([k, v]) => `${k} +${v - (g0[k] ?? 0)}`).join(', ');
          t.notOk(r.error, `${vip} datagram ${i}: answered (${r.error ?? "ok"}; counters: ${moved})`);
          t.equal(r.from, remote(vip, 53), `${vip} datagram ${i}: from the VIP`);
          t.ok(r.intact && r.length > 4000, `${vip} datagram ${i}: all 4000 bytes both ways (${r.length})`);
        }
      }
      const after = kpJson('show', 'stats').global;
      t.ok(after.frag_xlate - before.frag_xlate >= 4 * 2 * 2, `later fragments translated both ways (${after.frag_xlate - before.frag_xlate})`);
      t.equal(after.drop_frag - before.drop_frag, 0, 'none dropped as unknown');
      t.equal(after.drop_xlate - before.drop_xlate, 0, 'none untranslatable');
    } finally {
      setMtu(1500);
    }
  });

  t.test('counters: translated packets counted, none dropped as untranslatable or malformed', async (t) => {
    const s = kpJson('show', 'stats');
    t.ok(s.global.xlate >= 400, `xlate ${s.global.xlate}`);
    t.equal(s.global.drop_xlate, 0);
    t.equal(s.global.drop_malformed, 0);
    const udp46 = s.vips.find((v: { prefix: string; protocol: string }) => v.prefix === `${VIP46}/32` && v.protocol === 'udp');
    t.ok(udp46.counters.replyPkts >= 40 + 20, `NAT46 UDP: every reply translated back (cluster IP, node port and the big datagrams: ${udp46.counters.replyPkts})`);
  });
}
