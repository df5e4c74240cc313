// End to end, kpbpf as kube-proxy: `kpbpf run --kubernetes` in the node namespace reads Services,
// EndpointSlices and its Node from a protocol-level API server (HTTPS, bearer token) in the same
// namespace, and real TCP and UDP clients reach real backends through cluster IPs and node ports
// (198.18.0.0/15 and 2001:db8::/32 only). Then what a cluster does: a rolling update driven through
// EndpointSlice conditions under load, scale to zero, the API server restarting, resetting and
// answering 410, kpbpf SIGKILLed and restarted, kinds kube-proxy skips, a dual-stack service.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason, KPBPF } from '../helpers/e2e.js';
import { watchLog, type DaemonLog, type LogLine } from '../helpers/daemon-log.js';
import { startFakeApi, type FakeApiProc } from '../helpers/fakeapi-proc.js';
import { ep, node, slice, svc } from '../helpers/kubeobjects.js';
import type { Endpoint } from '../../src/kube/types.js';

const CLUSTER_IP = '198.18.100.50';
const CLUSTER_IP6 = '2001:db8:100::50';
const NODE_NAME = 'node-a';

/** New HTTP connections one after another until the stop file exists (bounded to 120 s): counts
 * of answers by backend, and every error. The last status on stdout, a status line every 200 ms on stderr. */
const LOAD = `
  const http = require('node:http');
  const fs = require('node:fs');
  const [host, port, stop] = process.argv.slice(1);
  const by = {}; const errors = []; let ok = 0; const t0 = Date.now();
  const status = () => JSON.stringify({ ok, by, nErrors: errors.length, errors: errors.slice(0, 5) });
  const once = () => new Promise((res) => {
    const req = http.get({ host, port: Number(port), path: '/', agent: false, timeout: 2000 }, (r) => {
      let b = ''; r.on('data', (d) => (b += d));
      r.on('end', () => { try { by[JSON.parse(b).backend] = (by[JSON.parse(b).backend] || 0) + 1; ok++; } catch { errors.push('bad answer'); } res(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { errors.push(e.code || e.message); res(); });
  });
  const timer = setInterval(() => console.error(status()), 200);
  (async () => { while (!fs.existsSync(stop) && Date.now() - t0 < 120000) { await once(); await new Promise((r) => setTimeout(r, 10)); }
    clearInterval(timer); console.log(status()); process.exit(0); })();`;

/** Keep-alive connections (one request every 100 ms each) until the stop file exists, bounded to
 * 120 s; per connection: answers by backend, local ports used, errors. */
const HOLD = `
  const http = require('node:http');
  const fs = require('node:fs');
  const [host, port, n, stop] = process.argv.slice(1);
  const conns = Array.from({ length: Number(n) }, () => ({ agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), by: {}, ports: new Set(), errors: [] }));
  const t0 = Date.now();
  const once = (c) => new Promise((res) => {
    const req = http.get({ host, port: Number(port), path: '/', agent: c.agent, timeout: 2000 }, (r) => {
      const local = r.socket && r.socket.localPort; let b = '';
      r.on('data', (d) => (b += d));
      r.on('end', () => { try { const j = JSON.parse(b); c.by[j.backend] = (c.by[j.backend] || 0) + 1; c.ports.add(local); } catch { c.errors.push('bad answer'); } res(); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { c.errors.push(e.code || e.message); res(); });
  });
  const status = () => JSON.stringify(conns.map((c) => ({ by: c.by, ports: c.ports.size, nErrors: c.errors.length, errors: c.errors.slice(0, 3) })));
  const timer = setInterval(() => console.error(status()), 200);
  Promise.all(conns.map(async (c) => { while (!fs.existsSync(stop) && Date.now() - t0 < 120000) { await once(c); await new Promise((r) => setTimeout(r, 100)); } }))
    .then(() => { clearInterval(timer); console.log(status()); process.exit(0); });`;

/** One UDP flow (one socket), a numbered datagram every 20 ms until the stop file exists (bounded
 * to 120 s): answers by backend, in order of arrival. */
const FLOW = `
  const dgram = require('node:dgram');
  const fs = require('node:fs');
  const [host, port, stop] = process.argv.slice(1);
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const seq = []; let sent = 0; const t0 = Date.now();
  s.on('message', (m) => { const t = m.toString(); const name = t.slice(0, t.indexOf('@')); if (seq[seq.length - 1] !== name) seq.push(name); got++; });
  let got = 0;
  const status = () => JSON.stringify({ sent, got, seq });
  s.connect(Number(port), host, () => {
    const timer = setInterval(() => {
      if (fs.existsSync(stop) || Date.now() - t0 > 120000) { clearInterval(timer); setTimeout(() => { console.log(status()); process.exit(0); }, 500); return; }
      s.send(String(sent++));
    }, 20);
    setInterval(() => console.error(status()), 200);
  });`;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end kpbpf run --kubernetes', { skip }, async () => {});
} else {
  run();
}

function run() {
  const { topo, bpffs, children, kpJson, watch } = e2eHarness(t, 'e2ekube', 3, { ipv6: true });
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-e2ekube-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'conf.json');
  const interfaces = topo.nodeIfs().map((name) => ({ name, redirect: true }));
  writeFileSync(file, JSON.stringify({ conf: { buckets: 16384, timeouts: { udp: 30 } }, interfaces }));
  const [b1, b2, b3] = topo.backends;
  // b1 runs on this node, b2 and b3 elsewhere.
  const nodeOf: Record<string, string> = { [b1.addr]: NODE_NAME, [b2.addr]: 'node-b', [b3.addr]: 'node-c' };
  const epOf = (addr: string, o: Partial<Endpoint> = {}) => ep(addr, { nodeName: nodeOf[addr] ?? nodeOf[topo.backends.find((b) => b.addr6 === addr)!.addr], ...o });
  const PORTS = [
    { name: 'http', port: 80, protocol: 'TCP', targetPort: 'http', nodePort: 30080 },
    { name: 'dns', port: 53, protocol: 'UDP', targetPort: 'dns', nodePort: 30053 },
  ];
  const SLICE_PORTS = [
    { name: 'http', port: 8080 },
    { name: 'dns', port: 5353, protocol: 'UDP' },
  ];
  const webService = svc('web', { type: 'NodePort', clusterIP: CLUSTER_IP, clusterIPs: [CLUSTER_IP], ports: PORTS });
  const webSlice = (eps: Endpoint[]) => slice('web', SLICE_PORTS, eps, { name: 'web-1' });

  let api: FakeApiProc;
  let daemon: (DaemonLog & { child: ChildProcess; exited: Promise<number | null> }) | undefined;
  const startDaemon = () => {
    const child = topo.spawn(topo.node.ns, [process.execPath, KPBPF, '--bpffs', bpffs, 'run', '--kubernetes', '--kubeconfig', api.kubeconfig, '--node-name', NODE_NAME, '-f', file, '--metrics', '127.0.0.1:10249', '--healthz', '127.0.0.1:10256']);
    children.push(child);
    daemon = { child, ...watchLog(child), exited: new Promise((r) => child.on('exit', (code) => r(code))) };
    return daemon;
  };
  const waitLog = (pred: (l: LogLine) => boolean, from = 0, ms = 20_000) => daemon!.waitLog(pred, ms, from);
  const mark = () => daemon!.lines.length;
  /** After `from`: the daemon applied a change naming `service`. */
  const applied = (from: number, service = 'default/web') => waitLog((l) => l.msg === 'applied' && (l.services as string[]).includes(service), from);
  const client = (mode: string, host: string, port: number, count: number, timeout = 2000) =>
    JSON.parse(topo.exec(topo.client.ns, [process.execPath, CLIENT, mode, '--vip', host, '--port', String(port), '--count', String(count), '--timeout', String(timeout)]).trim()) as {
      ok: number;
      failed: number;
      backends: Record<string, number>;
      errors?: string[];
    };
  const vips = () => kpJson('show', 'vips') as Array<{ prefix: string; protocol: string; port: number; backends: Array<{ address: string; state: string; terminating?: boolean }> }>;
  const lastLine = <T>(w: ReturnType<typeof watch>): T => {
    const text = w.err();
    const lines = text.slice(0, text.lastIndexOf('\n')).split('\n');
    return JSON.parse(lines[lines.length - 1]) as T;
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    api = await startFakeApi(topo.node.ns, mkdtempSync(join(dir, 'api-')), children);
    await api.put('nodes', node(NODE_NAME, [topo.node.addr, topo.node.addr6!], { 'topology.kubernetes.io/zone': 'zone-1' }));
    await api.put('services', webService);
    await api.put('endpointslices', webSlice([epOf(b1.addr), epOf(b2.addr), epOf(b3.addr)]));
  });

  t.test('nothing is programmed before the first lists are complete', async (t) => {
    // Three failed lists: with the back-off (0.8 s doubling, jittered up), the lists are complete
    // no sooner than 5.6 s after the first, well after the data plane is ready.
    await api.inject(...[503, 500, 503].map((status) => ({ kind: 'status' as const, status, only: 'list' as const, resource: 'services' as const })));
    startDaemon();
    await waitLog((l) => l.msg === 'list failed; trying again');
    await waitLog((l) => String(l.msg).startsWith('program loaded'));
    t.same(vips(), [], 'no VIP while a list is missing');
    const l = await waitLog((l) => l.msg === 'synced');
    t.match(l, { why: 'initial sync', services: 1 });
  });

  t.test('a Service and its EndpointSlice: TCP and UDP through the cluster IP and the node port', async (t) => {
    const tcp = client('http', CLUSTER_IP, 80, 30);
    t.equal(tcp.ok, 30, `cluster IP TCP: ${JSON.stringify(tcp)}`);
    t.ok(Object.keys(tcp.backends).length >= 2, 'spread over the endpoints');
    const udp = client('udp', CLUSTER_IP, 53, 20);
    t.equal(udp.ok, 20, `cluster IP UDP: ${JSON.stringify(udp)}`);
    const np = client('http', topo.node.addr, 30080, 20);
    t.equal(np.ok, 20, `node port TCP on the Node's address: ${JSON.stringify(np)}`);
    const npu = client('udp', topo.node.addr, 30053, 10);
    t.equal(npu.ok, 10, `node port UDP: ${JSON.stringify(npu)}`);
  });

  t.test('/healthz and /livez answer as kube-proxy\'s', async (t) => {
    const get = (path: string) =>
      JSON.parse(topo.exec(topo.node.ns, [process.execPath, '-e', `require('http').get('http://127.0.0.1:10256${path}', (r) => { let b=''; r.on('data', (d) => b += d); r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, body: JSON.parse(b) }))); })`]).trim());
    const h = get('/healthz');
    t.match(h, { status: 200, body: { nodeEligible: true } });
    t.match(h.body.lastUpdated, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$/, 'Go time format');
    t.match(get('/livez'), { status: 200 });
    t.notOk('nodeEligible' in get('/livez').body);
  });

  t.test('a rolling update through EndpointSlice conditions under load loses no connection', async (t) => {
    const stop = join(dir, 'stop-roll');
    const load = watch(['-e', LOAD, CLUSTER_IP, '80', stop]);
    const hold = watch(['-e', HOLD, CLUSTER_IP, '80', '6', stop]);
    await sleep(800);
    // b3 is replaced by... b3 again on another address is not possible here: b3 terminates, then goes.
    let from = mark();
    await api.put('endpointslices', webSlice([epOf(b1.addr), epOf(b2.addr), epOf(b3.addr, { conditions: { ready: false, serving: true, terminating: true } })]));
    await applied(from);
    t.match(vips().find((v) => v.protocol === 'tcp')!.backends.find((b) => b.address === b3.addr), { terminating: true }, 'b3 terminating');
    await sleep(600);
    from = mark();
    await api.put('endpointslices', webSlice([epOf(b1.addr), epOf(b2.addr)]));
    await applied(from);
    await sleep(600);
    from = mark();
    await api.put('endpointslices', webSlice([epOf(b1.addr), epOf(b2.addr), epOf(b3.addr)]));
    await applied(from);
    await sleep(600);
    writeFileSync(stop, '');
    await Promise.all([load.exited, hold.exited]);
    const l = JSON.parse(load.out()) as { ok: number; nErrors: number; errors: string[]; by: Record<string, number> };
    t.equal(l.nErrors, 0, `new connections all answered (${l.ok}): ${JSON.stringify(l)}`);
    t.ok(l.ok > 50, `${l.ok} connections made`);
    const h = JSON.parse(hold.out()) as Array<{ by: Record<string, number>; ports: number; nErrors: number }>;
    t.same(h.filter((c) => c.nErrors || c.ports !== 1 || Object.keys(c.by).length !== 1), [], 'every long connection stayed on its backend, none broken');
  });

  t.test('a UDP flow to an endpoint that stops serving moves at once (kube-proxy\'s conntrack cleanup)', async (t) => {
    const stop = join(dir, 'stop-udp');
    const flow = watch(['-e', FLOW, CLUSTER_IP, '53', stop]);
    await sleep(500);
    const first = lastLine<{ seq: string[] }>(flow).seq[0];
    const gone = topo.backends.find((b) => b.name === first)!;
    const from = mark();
    await api.put('endpointslices', webSlice(topo.backends.filter((b) => b !== gone).map((b) => epOf(b.addr))));
    await applied(from);
    await sleep(500);
    writeFileSync(stop, '');
    await flow.exited;
    const s = JSON.parse(flow.out()) as { sent: number; got: number; seq: string[] };
    t.equal(s.seq.length, 2, `the flow moved once, from ${first} to another: ${JSON.stringify(s)}`);
    t.not(s.seq[1], first);
    t.ok(s.sent - s.got <= 3, `at most a datagram or two in flight lost (${s.got}/${s.sent})`);
    await api.put('endpointslices', webSlice(topo.backends.map((b) => epOf(b.addr))));
  });

  t.test('the API server restarting, resetting and answering 410 changes nothing on the wire', async (t) => {
    const stop = join(dir, 'stop-api');
    const hold = watch(['-e', HOLD, CLUSTER_IP, '80', '4', stop]);
    await sleep(500);
    const from = mark();
    await api.call({ op: 'resetWatches' });
    await api.call({ op: 'restart', downMs: 1500 });
    await api.call({ op: 'compact' });
    await api.call({ op: 'endWatches' });
    await api.inject({ kind: 'status', status: 429, retryAfter: 0 }, { kind: 'reset' }, { kind: 'status', status: 500 });
    await api.call({ op: 'resetWatches' });
    await sleep(3000);
    const during = daemon!.lines.slice(from);
    t.same(during.filter((l) => (l.msg === 'applied' && (l.changes as number) > 0) || l.level === 50), [], 'no change applied, no error');
    t.ok(during.some((l) => String(l.msg).includes('failed; trying again')), 'the failures were seen and retried');
    // A change after all that still arrives.
    const m = mark();
    await api.put('endpointslices', webSlice([epOf(b1.addr), epOf(b2.addr)]));
    await applied(m);
    writeFileSync(stop, '');
    await hold.exited;
    const h = JSON.parse(hold.out()) as Array<{ by: Record<string, number>; ports: number; nErrors: number }>;
    t.same(h.filter((c) => c.nErrors || c.ports !== 1), [], 'long connections untouched');
    await api.put('endpointslices', webSlice(topo.backends.map((b) => epOf(b.addr))));
  });

  t.test('kpbpf SIGKILLed and restarted: no connection lost, no UDP flow moved, nothing changed', async (t) => {
    const stop = join(dir, 'stop-kill');
    const hold = watch(['-e', HOLD, CLUSTER_IP, '80', '6', stop]);
    const flow = watch(['-e', FLOW, CLUSTER_IP, '53', stop]);
    await sleep(600);
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    await sleep(1000); // forwarding from the pins alone
    startDaemon();
    const l = await waitLog((l) => l.msg === 'synced' || l.msg === 'synced: no changes');
    t.equal(l.msg, 'synced: no changes', `the restart reconciled without a change: ${JSON.stringify(l.ops)}`);
    await sleep(600);
    writeFileSync(stop, '');
    await Promise.all([hold.exited, flow.exited]);
    const h = JSON.parse(hold.out()) as Array<{ by: Record<string, number>; ports: number; nErrors: number }>;
    t.same(h.filter((c) => c.nErrors || c.ports !== 1 || Object.keys(c.by).length !== 1), [], 'every long connection on its backend');
    const s = JSON.parse(flow.out()) as { sent: number; got: number; seq: string[] };
    t.equal(s.seq.length, 1, `the UDP flow stayed on ${s.seq[0]}`);
    t.ok(s.sent - s.got <= 3, `the UDP flow was answered throughout (${s.got}/${s.sent})`);
  });

  t.test('scale to zero rejects (connection refused at once), as kube-proxy does', async (t) => {
    const from = mark();
    await api.put('endpointslices', webSlice([]));
    await applied(from);
    const r = client('http', CLUSTER_IP, 80, 3, 1500);
    t.equal(r.ok, 0);
    t.match(r.errors?.join(' '), /ECONNREFUSED/, `rejected, not dropped: ${JSON.stringify(r)}`);
    const m = mark();
    await api.put('endpointslices', webSlice(topo.backends.map((b) => epOf(b.addr))));
    await applied(m);
    t.equal(client('http', CLUSTER_IP, 80, 5).ok, 5, 'back');
  });

  t.test('kinds kube-proxy skips stay unserved', async (t) => {
    const from = mark();
    await api.put('services', svc('headless', { clusterIP: 'None', clusterIPs: ['None'] }));
    await api.put('services', svc('extname', { type: 'ExternalName', externalName: 'db.example.com', clusterIP: '', clusterIPs: [] } as never));
    const other = svc('other-proxy', { clusterIP: '198.18.100.52', clusterIPs: ['198.18.100.52'] });
    other.metadata!.labels = { 'service.kubernetes.io/service-proxy-name': 'another-proxy' };
    await api.put('services', other);
    await api.put('services', svc('probe', { clusterIP: '198.18.100.53', clusterIPs: ['198.18.100.53'] }));
    await applied(from, 'default/probe');
    const prefixes = vips().map((v) => v.prefix);
    t.ok(prefixes.includes('198.18.100.53/32'), 'a service created after them is served');
    t.notOk(prefixes.includes('198.18.100.52/32'), "another proxy's service is not");
    t.equal(new Set(prefixes).size, 2, `only web and probe: ${prefixes.join(', ')}`);
  });

  t.test('a dual-stack Service serves both families', async (t) => {
    const from = mark();
    await api.put('services', svc('dual', { clusterIP: '198.18.100.54', clusterIPs: ['198.18.100.54', CLUSTER_IP6], ipFamilies: ['IPv4', 'IPv6'], ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }] }));
    await api.put('endpointslices', slice('dual', [{ name: 'http', port: 8080 }], topo.backends.map((b) => epOf(b.addr)), { name: 'dual-4' }));
    await api.put('endpointslices', slice('dual', [{ name: 'http', port: 8080 }], topo.backends.map((b) => epOf(b.addr6!)), { name: 'dual-6', addressType: 'IPv6' }));
    await applied(from, 'default/dual');
    // The service may be applied before its slices: wait for the backends of both families.
    for (let i = 0; i < 100 && vips().filter((v) => v.prefix === '198.18.100.54/32' || v.prefix === `${CLUSTER_IP6}/128`).reduce((n, v) => n + v.backends.length, 0) < 6; i++) await sleep(50);
    const v4 = client('http', '198.18.100.54', 80, 10);
    const v6 = client('http', CLUSTER_IP6, 80, 10);
    if (v4.ok !== 10) t.comment(JSON.stringify(daemon!.lines.slice(from)).slice(0, 4000));
    t.equal(v4.ok, 10, `IPv4: ${JSON.stringify(v4)}`);
    t.equal(v6.ok, 10, `IPv6: ${JSON.stringify(v6)}`);
  });

  t.test('a LoadBalancer service with externalTrafficPolicy Local: its health check node port answers as kube-proxy\'s', async (t) => {
    const HC = 31999;
    const from = mark();
    await api.put('services', svc('lb-local', { type: 'LoadBalancer', clusterIP: '198.18.100.55', clusterIPs: ['198.18.100.55'], externalTrafficPolicy: 'Local', healthCheckNodePort: HC, ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, nodePort: 30090 }] }, { loadBalancer: { ingress: [{ ip: '198.18.100.56' }] } }));
    await api.put('endpointslices', slice('lb-local', [{ name: 'http', port: 8080 }], [epOf(b1.addr), epOf(b2.addr)], { name: 'lb-local-1' }));
    await waitLog((l) => l.msg === 'health check listening' && l.healthCheckNodePort === HC, from);
    const probe = () =>
      JSON.parse(topo.exec(topo.node.ns, [process.execPath, '-e', `require('http').get('http://127.0.0.1:${HC}/', (r) => { let b=''; r.on('data', (d) => b += d); r.on('end', () => console.log(JSON.stringify({ status: r.statusCode, weight: r.headers['x-load-balancing-endpoint-weight'], body: JSON.parse(b) }))); })`]).trim());
    // b1 is this node's: one local ready endpoint.
    for (let i = 0; i < 50 && probe().status !== 200; i++) await sleep(100);
    t.match(probe(), { status: 200, weight: '1', body: { service: { namespace: 'default', name: 'lb-local' }, localEndpoints: 1, serviceProxyHealthy: true } });
    const m = mark();
    await api.put('endpointslices', slice('lb-local', [{ name: 'http', port: 8080 }], [epOf(b1.addr, { conditions: { ready: false, serving: true, terminating: true } }), epOf(b2.addr)], { name: 'lb-local-1' }));
    await applied(m, 'default/lb-local');
    t.match(probe(), { status: 503, weight: '0', body: { localEndpoints: 0 } }, 'a terminating local endpoint does not count');
    const lb = client('http', '198.18.100.56', 80, 5, 800);
    t.equal(lb.ok, 5, `the load balancer IP still serves: its local endpoint terminates and serves (${JSON.stringify(lb.backends)})`);
  });

  t.test('/metrics has the API source\'s counters and the sync latency', async (t) => {
    const text = topo.exec(topo.node.ns, [process.execPath, '-e', "require('http').get('http://127.0.0.1:10249/metrics', (r) => { let b=''; r.on('data', (d) => b += d); r.on('end', () => process.stdout.write(b)); })"]);
    for (const name of ['kpbpf_kube_events_total{resource="endpointslices",type="MODIFIED"}', 'kpbpf_kube_watch_errors_total', 'kpbpf_kube_relists_total', 'kpbpf_kube_sync_latency_seconds_bucket', 'kpbpf_kube_pending_services', 'kpbpf_kube_syncs_total']) {
      t.ok(text.includes(name), name);
    }
    const syncs = Number(/^kpbpf_kube_syncs_total (\d+)/m.exec(text)?.[1]);
    t.ok(syncs > 5, `${syncs} syncs counted`);
  });

  t.test('SIGHUP applies a new conf from the file; a bad file changes nothing', async (t) => {
    const from = mark();
    writeFileSync(file, JSON.stringify({ conf: { buckets: 16384, timeouts: { udp: 45 } }, interfaces }));
    daemon!.child.kill('SIGHUP');
    const l = await waitLog((l) => l.msg === 'synced' || l.msg === 'synced: no changes', from);
    t.match(l, { why: 'SIGHUP: new conf' });
    t.match(kpJson('show', 'conf'), { timeouts: { udp: 45 } }, 'the new UDP timeout is in the data plane');
    const m = mark();
    writeFileSync(file, JSON.stringify({ conf: { buckets: 1000 }, interfaces }));
    daemon!.child.kill('SIGHUP');
    const bad = await waitLog((l) => String(l.msg).startsWith('SIGHUP: file refused'), m);
    t.match(JSON.stringify(bad.details), /buckets/, 'the field is named');
    t.match(kpJson('show', 'conf'), { timeouts: { udp: 45 } }, 'unchanged');
    t.equal(client('http', CLUSTER_IP, 80, 5).ok, 5, 'still serving');
  });

  t.test('SIGTERM: the daemon stops, the data plane keeps forwarding', async (t) => {
    daemon!.child.kill('SIGTERM');
    t.equal(await daemon!.exited, 0);
    t.equal(client('http', CLUSTER_IP, 80, 5).ok, 5);
  });
}
