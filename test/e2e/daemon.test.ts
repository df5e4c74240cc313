// End to end, what users replace kube-proxy for: connections survive what a cluster does all day.
// `kpbpf run` owns the data plane in the node namespace (198.18.0.0/15 only) while 16 long TCP
// connections make a request every 100 ms and one UDP flow sends a datagram every 5 ms, through
// (1) 100 config reloads, (2) a rolling update of two endpoints (terminating, then removed),
// (3) a SIGKILL of the daemon and a restart, (4) an upgrade in place (a new daemon with another
// object file). No established connection is reset, no datagram is lost, drained backends take
// no new connection; at the end one drained backend is flushed and gets no more packets.
import t, { type Test } from 'tap';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Backend } from '../../src/testbed/topology.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason, KPBPF } from '../helpers/e2e.js';
import { watchLog, type DaemonLog } from '../helpers/daemon-log.js';

const VIP = '198.18.100.40';
const VIP_EXTRA = '198.18.100.41';
const HOLDERS = 16;
const STREAM_EVERY_MS = 5;
const OBJECT = resolve(KPBPF, '../../build/kp.bpf.o');

/** HOLDERS keep-alive HTTP connections, one request each every 100 ms, until the stop file exists.
 * A status line (JSON) on stderr every 250 ms; the final one on stdout. Bounded to 180 s. */
const HOLDER = `
  const http = require('node:http');
  const fs = require('node:fs');
  const [host, port, n, stop] = process.argv.slice(1);
  const conns = Array.from({ length: Number(n) }, () => ({ agent: new http.Agent({ keepAlive: true, maxSockets: 1 }), by: {}, ports: new Set(), errors: [] }));
  const t0 = Date.now();
  const done = () => fs.existsSync(stop) || Date.now() - t0 > 180000;
  const once = (c) => new Promise((res) => {
    const req = http.get({ host, port: Number(port), path: '/', agent: c.agent, timeout: 2000 }, (r) => {
      const local = r.socket && r.socket.localPort;
      let b = '';
      r.on('data', (d) => (b += d));
      r.on('end', () => {
        try { const j = JSON.parse(b); c.by[j.backend] = (c.by[j.backend] || 0) + 1; c.ports.add(local); } catch { c.errors.push('bad answer'); }
        res();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { c.errors.push(e.code || e.message); res(); });
  });
  const status = () => JSON.stringify(conns.map((c) => ({ by: c.by, ports: c.ports.size, errors: c.errors.slice(0, 5), nErrors: c.errors.length })));
  const timer = setInterval(() => console.error(status()), 250);
  Promise.all(conns.map(async (c) => { while (!done()) { await once(c); await new Promise((r) => setTimeout(r, 100)); } }))
    .then(() => { clearInterval(timer); console.log(status()); process.exit(0); });`;

/** One UDP flow: a numbered datagram every STREAM_EVERY_MS ms until the stop file exists, then 1 s
 * for the last answers. Bounded to 180 s. */
const STREAM = `
  const dgram = require('node:dgram');
  const fs = require('node:fs');
  const [host, port, stop, every] = process.argv.slice(1);
  const s = dgram.createSocket('udp4');
  const got = new Set();
  const backends = {};
  const from = new Set();
  let seq = 0;
  const t0 = Date.now();
  s.on('message', (m, r) => {
    const text = m.toString();
    const name = text.slice(0, text.indexOf('@'));
    got.add(Number(text.slice(text.lastIndexOf(':') + 1)));
    backends[name] = (backends[name] || 0) + 1;
    from.add(r.address + ':' + r.port);
  });
  const status = () => ({ sent: seq, received: got.size, backends, from: [...from] });
  s.connect(Number(port), host, () => {
    const timer = setInterval(() => {
      if (fs.existsSync(stop) || Date.now() - t0 > 180000) {
        clearInterval(timer);
        return setTimeout(() => {
          const missing = [];
          for (let i = 0; i < seq && missing.length < 20; i++) if (!got.has(i)) missing.push(i);
          console.log(JSON.stringify({ ...status(), missing }));
          process.exit(0);
        }, 1000);
      }
      s.send(String(seq++));
    }, Number(every));
    setInterval(() => console.error(JSON.stringify(status())), 250);
  });`;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) {
  t.test('end-to-end kpbpf run', { skip }, async () => {});
} else {
  run();
}

interface ConnStatus {
  by: Record<string, number>;
  ports: number;
  errors: string[];
  nErrors: number;
}

function run() {
  const { topo, bpffs, children, kp, kpJson, watch } = e2eHarness(t, 'e2erun', 4);
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-e2erun-'));
  const file = join(dir, 'config.json');
  const stop = join(dir, 'stop');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  // The daemon, its JSON log lines as they come.
  let daemon: (DaemonLog & { child: ChildProcess; exited: Promise<number | null> }) | undefined;
  const startDaemon = (env: Record<string, string> = {}) => {
    const child = topo.spawn(topo.node.ns, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, KPBPF, '--bpffs', bpffs, 'run', '-f', file, '--no-metrics']);
    children.push(child);
    daemon = { child, ...watchLog(child), exited: new Promise((r) => child.on('exit', (code) => r(code))) };
    return daemon;
  };
  /** The next log line (after `from`) that `pred` accepts. */
  const waitLog = (pred: (l: Record<string, unknown>) => boolean, from = 0, ms = 20_000) => daemon!.waitLog(pred, ms, from);
  const synced = (l: Record<string, unknown>) => l.msg === 'applied' || l.msg === 'no changes';

  let backends: Backend[] = [...topo.backends];
  const terminating = new Set<string>();
  let extra = false;
  let weight = 1;
  /** The config as the cluster's state says: every backend's interface, the VIPs, their endpoints. */
  const writeConfig = () => {
    const eps = backends.map((b) => ({ address: b.addr, ...(terminating.has(b.name) ? { terminating: true } : {}), ...(b.name === 'b2' ? { weight } : {}) }));
    const vips = [
      { prefix: `${VIP}/32`, protocol: 'tcp', port: 80, target_port: 8080, backends: eps },
      { prefix: `${VIP}/32`, protocol: 'udp', port: 53, target_port: 5353, backends: eps },
      ...(extra ? [{ prefix: `${VIP_EXTRA}/32`, protocol: 'tcp', port: 80, target_port: 8080, backends: eps.slice(0, 1) }] : []),
    ];
    const interfaces = [topo.node.clientIf, ...topo.backends.map((b) => b.nodeIf)].map((name) => ({ name }));
    writeFileSync(`${file}.new`, JSON.stringify({ conf: { buckets: 16384 }, interfaces, vips }, null, 1));
    renameSync(`${file}.new`, file); // as kubelet and editors replace a file
  };
  /** Write the config and wait until the daemon applied it. */
  const change = async () => {
    const from = daemon!.lines.length;
    writeConfig();
    return waitLog((l) => l.msg === 'applied' && l.why === 'file changed', from);
  };

  let holder: ReturnType<typeof watch>;
  let stream: ReturnType<typeof watch>;
  /** The last whole status line a watched client wrote. */
  const lastStatus = <T>(w: ReturnType<typeof watch>): T => {
    const text = w.err();
    const lines = text.slice(0, text.lastIndexOf('\n')).split('\n');
    return JSON.parse(lines[lines.length - 1]) as T;
  };
  const conns = () => lastStatus<ConnStatus[]>(holder);
  /** Every connection so far: no error, never reconnected, one backend. */
  const checkConns = (t: Test, when: string) => {
    const now = conns();
    const bad = now.filter((c) => c.nErrors > 0 || c.ports > 1 || Object.keys(c.by).length !== 1);
    t.same(bad, [], `${when}: all ${now.length} long connections alive, on their backends`);
  };
  const streamStatus = () => lastStatus<{ sent: number; received: number; backends: Record<string, number> }>(stream);
  /** The stream's answers keep coming (nothing but the last few datagrams in flight). */
  const checkStream = async (t: Test, when: string) => {
    await new Promise((r) => setTimeout(r, 300));
    const s = streamStatus();
    t.ok(s.sent - s.received <= 20, `${when}: the UDP stream is answered (${s.received} of ${s.sent})`);
  };
  /** New connections now: which backends take them. */
  const burst = () => {
    const r = JSON.parse(topo.exec(topo.client.ns, [process.execPath, CLIENT, 'http', '--vip', VIP, '--port', '80', '--count', '40']).trim());
    return r as { ok: number; backends: Record<string, number> };
  };

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    writeConfig();
    startDaemon();
    await waitLog(synced);
    holder = watch(['-e', HOLDER, VIP, '80', String(HOLDERS), stop]);
    stream = watch(['-e', STREAM, VIP, '53', stop, String(STREAM_EVERY_MS)]);
    // Every connection has made its first request.
    for (let i = 0; i < 100 && !(holder.err().includes('\n') && conns().every((c) => Object.keys(c.by).length === 1)); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
  });

  t.test('the long connections spread over the backends; the stream is answered from the VIP', async (t) => {
    const used = new Set(conns().flatMap((c) => Object.keys(c.by)));
    t.ok(used.size >= 3, `the ${HOLDERS} connections use ${[...used].join(', ')}`);
    await checkStream(t, 'at start');
    t.same(lastStatus<{ from: string[] }>(stream).from, [`${VIP}:53`], 'every answer from the VIP');
  });

  t.test('100 reloads: every one applied, nothing interrupted', async (t) => {
    const ms: number[] = [];
    for (let i = 0; i < 100; i++) {
      // Alternately a VIP more or less and another weight for b2: each reload changes something.
      if (i % 2) extra = !extra;
      else weight = weight === 1 ? 2 : 1;
      const l = await change();
      ms.push((l.ms as { read: number; apply: number }).read + (l.ms as { read: number; apply: number }).apply);
    }
    t.pass(`100 reloads applied; read + apply ${Math.min(...ms).toFixed(1)}-${Math.max(...ms).toFixed(1)} ms`);
    checkConns(t, 'after 100 reloads');
    await checkStream(t, 'after 100 reloads');
  });

  t.test('a rolling update: a new endpoint, the old one terminating, then removed; drained ones take no new connection', async (t) => {
    for (const [old, name] of [['b4', 'b5'], ['b3', 'b6']] as const) {
      const b = topo.addBackend(name);
      await topo.startServers(b);
      backends.push(b);
      await change(); // the new endpoint (and its interface) first
      terminating.add(old);
      await change();
      const during = burst();
      t.equal(during.ok, 40, `${old} terminating: every new connection answered`);
      t.notOk(during.backends[old], `${old} terminating: no new connection on it while ready ones exist (${JSON.stringify(during.backends)})`);
      backends = backends.filter((x) => x.name !== old);
      terminating.delete(old);
      await change();
      const after = burst();
      t.notOk(after.backends[old], `${old} removed: no new connection on it (${JSON.stringify(after.backends)})`);
      t.ok(after.backends[name], `the new endpoint ${name} takes new connections`);
      checkConns(t, `after ${old} rolled to ${name}`);
      await checkStream(t, `after ${old} rolled to ${name}`);
    }
    const listed = kpJson('show', 'vips').find((v: { protocol: string }) => v.protocol === 'tcp');
    t.same(
      listed.backends.filter((b: { state: string }) => b.state === 'active').map((b: { address: string }) => b.address).sort(),
      backends.map((b) => b.addr).sort(),
      'the active backends are the config\'s',
    );
  });

  t.test('SIGKILL of the daemon: forwarding goes on; a new one adopts the pins without a change', async (t) => {
    const before = streamStatus().received;
    daemon!.child.kill('SIGKILL');
    await daemon!.exited;
    await new Promise((r) => setTimeout(r, 500));
    t.ok(streamStatus().received > before + 40, 'the stream was answered while no daemon ran');
    startDaemon();
    const l = await waitLog(synced);
    t.equal(l.msg, 'no changes', 'the pinned state matched the config');
    checkConns(t, 'after the restart');
    await checkStream(t, 'after the restart');
  });

  t.test('an upgrade in place: a new daemon with another object takes over the maps and links', async (t) => {
    const progId = () => JSON.parse(topo.exec(topo.node.ns, ['bpftool', '-j', 'prog', 'show', 'pinned', `${bpffs}/kpbpf/prog`])).id as number;
    const old = progId();
    const obj = join(dir, 'kp-next.bpf.o');
    copyFileSync(OBJECT, obj);
    daemon!.child.kill('SIGTERM');
    t.equal(await daemon!.exited, 0, 'the old daemon stopped, leaving the data plane forwarding');
    startDaemon({ KPBPF_OBJECT: obj });
    const l = await waitLog(synced);
    t.equal(l.msg, 'no changes');
    t.not(progId(), old, 'a new program runs');
    await new Promise((r) => setTimeout(r, 500));
    checkConns(t, 'after the upgrade');
    await checkStream(t, 'after the upgrade');
  });

  t.test('a drained backend flushed: its connections get no more packets; the others go on', async (t) => {
    // The daemon owns the data plane: stop it, then flush with the CLI, as an operator would.
    daemon!.child.kill('SIGTERM');
    t.equal(await daemon!.exited, 0);
    const on = (name: string) => conns().filter((c) => c.by[name]).length;
    const victim = on('b3') ? 'b3' : 'b4';
    t.ok(on(victim) > 0, `${on(victim)} connections on the drained ${victim}`);
    const addr = topo.backends.find((b) => b.name === victim)!.addr;
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'tcp', addr, 'flush');
    await new Promise((r) => setTimeout(r, 400)); // answers in flight at the flush
    const served = (name: string) => conns().reduce((a, c) => a + (c.by[name] ?? 0), 0);
    const s0 = { victim: served(victim), b1: served('b1') };
    await new Promise((r) => setTimeout(r, 1500));
    t.equal(served(victim), s0.victim, `${victim} answered nothing more after the flush`);
    t.ok(served('b1') > s0.b1, 'b1 goes on answering its connections');
    writeFileSync(stop, '');
    await Promise.all([holder.exited, stream.exited]);
    const final = JSON.parse(holder.out().trim()) as ConnStatus[];
    const survivors = final.filter((c) => !c.by[victim]);
    t.same(survivors.filter((c) => c.nErrors > 0 || c.ports > 1), [], `the ${survivors.length} connections not on ${victim}: never reset, never reconnected`);
    const s = JSON.parse(stream.out().trim()) as { sent: number; received: number; missing: number[] };
    t.equal(s.received, s.sent, `no datagram of the stream lost in the whole run (${s.sent} sent; missing ${s.missing.join(',') || 'none'})`);
    t.ok(existsSync(stop));
  });
}
