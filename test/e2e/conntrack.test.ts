// End to end, connection semantics a kube-proxy user relies on, with real sockets in namespaces
// (198.18.0.0/15 only): a connection idle past the short timeouts where the server speaks first,
// also after its backend was drained meanwhile; a direct connection reusing the client port of a
// closed VIP connection; connect() to a VIP without endpoints refused at once.
import t from 'tap';
import { rmSync, writeFileSync } from 'node:fs';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason } from '../helpers/e2e.js';

const VIP = '198.18.100.10';
const VIP_LATE = '198.18.100.12';
const VIP_EMPTY = '198.18.100.13';
const LATE_PORT = 9000;
const VIP_SMALL_MTU = '198.18.100.14';
const SINK_PORT = 9001;
const SMALL_MTU = 1280;
const UPLOAD = 200_000;
const VIP_BIG_UDP = '198.18.100.15';
const BIG_UDP_PORT = 5355;
const BIG_DATAGRAM = 4000; // fragmented on every 1500-byte link, both ways
const IDLE_MS = 3000; // longer than the 1 s UDP and handshake timeouts set below

/** A server that says nothing until IDLE_MS after a client connects, then greets and echoes. */
const LATE_SERVER = `
  const net = require('node:net');
  const [name, port, idle] = process.argv.slice(1);
  net.createServer((s) => {
    const timer = setTimeout(() => s.write('late hello from ' + name + '\\n'), Number(idle));
    s.on('data', (d) => s.write('echo ' + d));
    s.on('close', () => clearTimeout(timer));
    s.on('error', () => {});
  }).listen(Number(port), () => console.log('ready'));`;

/** Counts what a client uploads and answers with the total once it has `want` bytes. */
const SINK_SERVER = `
  const net = require('node:net');
  const [port, want] = process.argv.slice(1);
  net.createServer((s) => {
    let n = 0;
    s.on('data', (d) => { n += d.length; if (n >= Number(want)) s.end('got ' + n); });
    s.on('error', () => {});
  }).listen(Number(port), () => console.log('ready'));`;

/** Answers each datagram with its own bytes reversed, prefixed with the backend's name. */
const BIG_UDP_SERVER = `
  const dgram = require('node:dgram');
  const [name, port] = process.argv.slice(1);
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from(name + ':'), Buffer.from(m).reverse()]), r.port, r.address));
  s.bind(Number(port), () => console.log('ready'));`;

/** Sends one datagram of `size` bytes and checks the answer. */
const BIG_UDP_CLIENT = `
  const dgram = require('node:dgram');
  const [host, port, size] = process.argv.slice(1);
  const s = dgram.createSocket('udp4');
  const msg = Buffer.from(Array.from({ length: Number(size) }, (_, i) => (i * 13) & 255));
  const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
  setTimeout(() => done({ error: 'timeout' }), 5000);
  s.on('message', (m, r) => {
    const colon = m.indexOf(':');
    const body = m.subarray(colon + 1);
    done({ from: r.address + ':' + r.port, backend: m.subarray(0, colon).toString(), length: body.length, intact: Buffer.compare(body, Buffer.from(msg).reverse()) === 0 });
  });
  s.send(msg, Number(port), host);`;

/** Uploads `size` bytes in full-sized segments (DF, as Linux sends TCP) and waits for the count. */
const UPLOAD_CLIENT = `
  const net = require('node:net');
  const [host, port, size] = process.argv.slice(1);
  const t0 = Date.now();
  const s = net.connect({ host, port: Number(port) });
  let got = '';
  const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
  setTimeout(() => done({ error: 'timeout', got }), 10000);
  s.on('connect', () => s.write(Buffer.alloc(Number(size), 0x61)));
  s.on('data', (d) => (got += d));
  s.on('end', () => done({ got, ms: Date.now() - t0 }));
  s.on('error', (e) => done({ error: e.code || e.message, got }));`;

/** Connects to host:port, waits for the server's first line, answers, prints what it saw. */
const LATE_CLIENT = `
  const net = require('node:net');
  const [host, port] = process.argv.slice(1);
  const t0 = Date.now();
  const s = net.connect({ host, port: Number(port) });
  let buf = '';
  const done = (o) => { console.log(JSON.stringify(o)); s.destroy(); process.exit(0); };
  setTimeout(() => done({ error: 'timeout', got: buf }), 15000);
  s.on('connect', () => console.error('connected'));
  s.on('data', (d) => {
    buf += d;
    if (buf.includes('late hello') && !buf.includes('echo')) s.write('bye\\n');
    if (buf.includes('echo bye')) done({ got: buf, remote: s.remoteAddress + ':' + s.remotePort, ms: Date.now() - t0 });
  });
  s.on('error', (e) => done({ error: e.code || e.message, got: buf }));`;

/** One HTTP/1.0 GET from a fixed local port; the server closes first. */
const GET_FROM_PORT = `
  const net = require('node:net');
  const [host, port, localPort] = process.argv.slice(1);
  const s = net.connect({ host, port: Number(port), localPort: Number(localPort) });
  let body = '';
  let remote, local;
  s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  s.on('connect', () => {
    remote = s.remoteAddress + ':' + s.remotePort;
    local = s.localPort;
    s.write('GET / HTTP/1.0\\r\\n\\r\\n');
  });
  s.on('data', (d) => (body += d));
  s.on('close', () => {
    const m = /"backend":"([^"]+)"/.exec(body);
    console.log(JSON.stringify({ backend: m && m[1], remote, local }));
  });
  s.on('error', (e) => { console.log(JSON.stringify({ error: e.code || e.message })); process.exit(0); });`;

/** connect() over TCP and a connected UDP send; reports the errors and how long they took. */
const REFUSED_CLIENT = `
  const net = require('node:net');
  const dgram = require('node:dgram');
  const [host] = process.argv.slice(1);
  const out = {};
  const t0 = Date.now();
  const s = net.connect({ host, port: 80 });
  s.setTimeout(5000, () => s.destroy(new Error('timeout')));
  s.on('connect', () => { out.tcp = 'connected'; s.destroy(); });
  s.on('error', (e) => { out.tcp = e.code || e.message; out.tcpMs = Date.now() - t0; udp(); });
  function udp() {
    const u = dgram.createSocket('udp4');
    const t1 = Date.now();
    const timer = setTimeout(() => { out.udp = 'no error'; u.close(); console.log(JSON.stringify(out)); }, 3000);
    u.on('error', (e) => { clearTimeout(timer); out.udp = e.code || e.message; out.udpMs = Date.now() - t1; u.close(); console.log(JSON.stringify(out)); });
    let closed = false; u.on('close', () => (closed = true));
    u.connect(53, host, () => { u.send('q'); setTimeout(() => closed || u.send('q'), 200); });
  }`;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end connection tracking', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, children, kp, kpJson, inClient, watch } = e2eHarness(t, 'e2ect', 2);

  function startInline(b: Backend, script: string, ...args: string[]): Promise<void> {
    const child = topo.spawn(b.ns, [process.execPath, '-e', script, ...args]);
    children.push(child);
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`server in ${b.ns} did not start`)), 10_000);
      child.stdout!.on('data', (d) => String(d).includes('ready') && (clearTimeout(timer), ok()));
    });
  }

  t.before(async () => {
    for (const b of topo.backends) {
      await topo.startServers(b);
      await startInline(b, LATE_SERVER, b.name, String(LATE_PORT), String(IDLE_MS));
      await startInline(b, BIG_UDP_SERVER, b.name, String(BIG_UDP_PORT));
    }
    // A backend behind a link of a smaller MTU on the node's side (the backend's own is 1500, so
    // it advertises a 1460-byte MSS): only path-MTU discovery gets an upload through.
    const narrow = topo.addBackend('b3');
    topo.exec(topo.node.ns, ['ip', 'link', 'set', narrow.nodeIf, 'mtu', String(SMALL_MTU)]);
    await startInline(narrow, SINK_SERVER, String(SINK_PORT), String(UPLOAD));
    kp('attach', ...topo.nodeIfs());
    // The timeouts a connection must outlive: UDP (VPP's `timeout`) and the TCP handshake states.
    kp('conf', 'timeout', '1', 'timeout', 'udp_stream', '1', 'timeout', 'tcp_syn_sent', '1', 'timeout', 'tcp_syn_recv', '1');
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'tcp', 'port', '80', 'target', '8080');
    kp('vip', 'add', `${VIP_LATE}/32`, 'protocol', 'tcp', 'port', String(LATE_PORT));
    kp('vip', 'add', `${VIP_EMPTY}/32`, 'protocol', 'tcp', 'port', '80');
    kp('vip', 'add', `${VIP_EMPTY}/32`, 'protocol', 'udp', 'port', '53');
    for (const v of [VIP, VIP_LATE]) kp('backend', 'add', `${v}/32`, 'protocol', 'tcp', ...topo.backends.slice(0, 2).map((b) => b.addr));
    kp('vip', 'add', `${VIP_BIG_UDP}/32`, 'protocol', 'udp', 'port', '53', 'target', String(BIG_UDP_PORT));
    kp('backend', 'add', `${VIP_BIG_UDP}/32`, 'protocol', 'udp', ...topo.backends.slice(0, 2).map((b) => b.addr));
    kp('vip', 'add', `${VIP_SMALL_MTU}/32`, 'protocol', 'tcp', 'port', String(SINK_PORT));
    kp('backend', 'add', `${VIP_SMALL_MTU}/32`, 'protocol', 'tcp', topo.backends[2].addr);
  });

  t.test('idle past the UDP and handshake timeouts, the server speaks first: the reply comes from the VIP', async (t) => {
    const r = inClient(LATE_CLIENT, VIP_LATE, String(LATE_PORT));
    t.notOk(r.error, `no error (${r.error ?? ''})`);
    t.match(r.got, /late hello from b\d/, "the server's first words arrived after the idle time");
    t.match(r.got, /echo bye/, 'and the connection still works both ways');
    t.equal(r.remote, `${VIP_LATE}:${LATE_PORT}`, 'from the VIP');
    t.ok(r.ms >= IDLE_MS, `idle ${r.ms} ms`);
  });

  t.test("idle, with its backend drained meanwhile: the connection stays on it", async (t) => {
    const c = watch(['-e', LATE_CLIENT, VIP_LATE, String(LATE_PORT)]);
    await c.waitFor('connected', 5000);
    await new Promise((r) => setTimeout(r, 300)); // the handshake's last ACK has passed
    const flows = kpJson('show', 'flows', '--limit', '10000') as { vip: string; backend: string; state: string }[];
    const conn = flows.find((f) => f.vip === `${VIP_LATE}:${LATE_PORT}` && f.state === 'established');
    t.ok(conn, `the connection is tracked as established (${JSON.stringify(flows.filter((f) => f.vip.startsWith(VIP_LATE)))})`);
    const addr = conn!.backend.split(':')[0];
    kp('backend', 'del', `${VIP_LATE}/32`, 'protocol', 'tcp', addr);
    await c.exited;
    const r = JSON.parse(c.out().trim());
    const name = topo.backends.find((b) => b.addr === addr)!.name;
    t.match(r.got, new RegExp(`late hello from ${name}`), `the drained backend ${name} spoke first, through the VIP`);
    t.match(r.got, /echo bye/);
    kp('backend', 'add', `${VIP_LATE}/32`, 'protocol', 'tcp', addr);
  });

  t.test('a live connection keeps its backend across a connection-table resize (a program reload)', async (t) => {
    const pause = `/tmp/kpbpf-e2ect-resize-${process.pid}`;
    const c = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '2', '--pause-file', pause]);
    t.ok(await c.waitFor('request 0 done'), 'first request on the connection done');
    // Drain the connection's backend: Maglev now sends everything to the other one, so a connection
    // that lost its record would be picked up there (and reset); only the copied record keeps it.
    const flows = kpJson('show', 'flows', '--limit', '10000') as { vip: string; backend: string; state: string; idleSeconds: number }[];
    const conn = flows.filter((f) => f.vip === `${VIP}:80` && f.state === 'established').sort((a, b) => a.idleSeconds - b.idleSeconds)[0];
    t.ok(conn, 'the connection is tracked');
    const addr = conn.backend.split(':')[0];
    // For a failure's message: a lost record shows as a loose pick-up, a lost reply entry as stale.
    const g0 = kpJson('show', 'stats').global as Record<string, number>;
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'tcp', addr);
    const before = kpJson('show', 'conf').buckets;
    kp('conf', 'buckets', String(before * 2));
    t.equal(kpJson('show', 'conf').buckets, before * 2, 'the table was resized (a reload of the program)');
    writeFileSync(`${pause}.1`, '');
    await c.exited;
    rmSync(`${pause}.1`, { force: true });
    const r = c.out().trim() ? JSON.parse(c.out().trim()) : { backends: [] };
    t.equal(r.backends.length, 2, `both requests answered on the one connection (${c.err().trim().split('\n').pop()})`);
    const g1 = kpJson('show', 'stats').global as Record<string, number>;
    const moved = ['ct_loose', 'ct_stale', 'ct_remap', 'drop_ct_clash'].map((k) => `${k} +${g1[k] - g0[k]}`).join(', ');
    t.equal(new Set(r.backends).size, 1, `the connection stayed on ${r.backends[0]} (${r.backends.join(', ')}; client ports ${(r.localPorts ?? []).join(', ')}; ${moved})`);
    t.equal(topo.backends.find((b) => b.name === r.backends[0])?.addr, addr, 'its drained backend');
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', addr);
  });

  t.test('a direct connection reusing the client port of a closed VIP connection works', async (t) => {
    const port = String(45000 + (process.pid % 1000));
    const viaVip = inClient(GET_FROM_PORT, VIP, '80', port);
    t.notOk(viaVip.error, `the VIP connection completed (${viaVip.error ?? ''})`);
    t.equal(viaVip.remote, `${VIP}:80`);
    const b = topo.backends.find((x) => x.name === viaVip.backend)!;
    t.ok(b, `served by ${viaVip.backend}`);
    const direct = inClient(GET_FROM_PORT, b.addr, '8080', port);
    t.notOk(direct.error, `the direct connection completed (${direct.error ?? ''})`);
    t.equal(direct.local, Number(port), 'from the same client port');
    t.equal(direct.remote, `${b.addr}:8080`, "its replies keep the backend's own address");
    t.equal(direct.backend, b.name);
    t.ok(kpJson('show', 'stats').global.ct_stale >= 1, "the closed connection's leftover was removed");
  });

  t.test(`path-MTU discovery through a VIP: a ${UPLOAD}-byte upload crosses a ${SMALL_MTU}-byte link to the backend`, async (t) => {
    const before = kpJson('show', 'stats').global.icmp_too_big;
    const r = inClient(UPLOAD_CLIENT, VIP_SMALL_MTU, String(SINK_PORT), String(UPLOAD));
    t.notOk(r.error, `no error (${r.error ?? ''}, got '${r.got}')`);
    t.equal(r.got, `got ${UPLOAD}`, 'every byte arrived');
    const sent = kpJson('show', 'stats').global.icmp_too_big - before;
    t.ok(sent >= 1, `fragmentation needed was sent from XDP, quoting the VIP (${sent})`);
    const pmtu = topo.exec(topo.client.ns, ['ip', 'route', 'get', VIP_SMALL_MTU]);
    t.match(pmtu, new RegExp(`mtu ${SMALL_MTU}`), `the client learnt the path MTU: ${pmtu.trim()}`);
  });

  t.test(`a ${BIG_DATAGRAM}-byte UDP datagram through a VIP, fragmented both ways`, async (t) => {
    const before = kpJson('show', 'stats').global;
    for (let i = 0; i < 3; i++) {
      const r = inClient(BIG_UDP_CLIENT, VIP_BIG_UDP, '53', String(BIG_DATAGRAM));
      t.notOk(r.error, `datagram ${i}: answered (${r.error ?? ''})`);
      t.equal(r.from, `${VIP_BIG_UDP}:53`, `datagram ${i}: from the VIP`);
      t.equal(r.length, BIG_DATAGRAM, `datagram ${i}: all ${BIG_DATAGRAM} bytes came back`);
      t.ok(r.intact, `datagram ${i}: intact both ways (served by ${r.backend})`);
    }
    const after = kpJson('show', 'stats').global;
    t.ok(after.frag_xlate - before.frag_xlate >= 3 * 2 * 2, `later fragments were translated both ways (${after.frag_xlate - before.frag_xlate})`);
    t.equal(after.drop_frag - before.drop_frag, 0, 'none dropped');
  });

  t.test('a VIP without endpoints: connect() fails at once with ECONNREFUSED, UDP too', async (t) => {
    const r = inClient(REFUSED_CLIENT, VIP_EMPTY);
    t.equal(r.tcp, 'ECONNREFUSED', 'TCP connect refused');
    t.ok(r.tcpMs < 1000, `at once (${r.tcpMs} ms), not after a SYN timeout`);
    t.equal(r.udp, 'ECONNREFUSED', 'a connected UDP socket gets ECONNREFUSED');
    const s = kpJson('show', 'stats');
    t.ok(s.global.reject >= 2, `ICMP port unreachable sent (${s.global.reject})`);
    const v = s.vips.filter((x: { prefix: string }) => x.prefix === `${VIP_EMPTY}/32`);
    t.ok(v.every((x: { counters: { noServerPkts: number } }) => x.counters.noServerPkts >= 1), 'counted as no server configured');
  });
}
