// kpbpf run against a private bpffs (no interface attached, packets through BPF_PROG_TEST_RUN):
// applies the file, reloads on change and on SIGHUP, refuses an invalid file and keeps the running
// state, refuses other writers with its name, serves /metrics whose values match the maps after
// traffic and /healthz, and leaves the data plane pinned and forwarding on SIGTERM and SIGKILL.
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync, renameSync, symlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { DEFAULT_OBJECT, openPinned, testRun } from '../../src/loader/index.js';
import { KPBPF } from '../helpers/e2e.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { BAD_CONFIGS } from '../helpers/bad-configs.js';
import { watchLog } from '../helpers/daemon-log.js';
import { buildPacket } from '../helpers/packet.js';

const skip = skipUnlessCi(process.getuid?.() !== 0 ? 'needs root (bpffs, BPF maps)' : !existsSync(DEFAULT_OBJECT) ? `${DEFAULT_OBJECT} missing: run npm run build` : undefined);
if (skip) t.test('kpbpf run', { skip }, async () => {});
else run();

interface Proc {
  child: ChildProcess;
  logs: () => Array<Record<string, unknown>>;
  /** the first log line (from index `from` on) that pred accepts */
  waitLog: (pred: (l: Record<string, unknown>) => boolean, ms?: number, from?: number) => Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function run() {
  const tag = randomBytes(3).toString('hex');
  const bpffs = `/run/kpbpf-run-${tag}`;
  const dir = `/tmp/kpbpf-run-${tag}`;
  const file = `${dir}/config.json`;
  const procs: ChildProcess[] = [];
  mkdirSync(bpffs, { recursive: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    try {
      execFileSync(process.execPath, [KPBPF, '--bpffs', bpffs, 'detach', '--purge'], { stdio: 'ignore' });
    } catch {
      // nothing pinned
    }
    execFileSync('umount', [bpffs]);
    rmdirSync(bpffs);
    rmSync(dir, { recursive: true, force: true });
  });
  const kp = (...args: string[]) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [KPBPF, '--bpffs', bpffs, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), err: '' };
    } catch (e) {
      const x = e as { status: number; stdout: string; stderr: string };
      return { code: x.status, out: x.stdout, err: x.stderr };
    }
  };
  const vips = () => JSON.parse(kp('--json', 'show', 'vips').out) as Array<{ prefix: string; port: number; backends: { address: string; state: string }[] }>;
  /** A VIP's active backends (a removed one drains until the daemon's next walk of kp_ct frees it). */
  const active = (v: { backends: { address: string; state: string }[] }) => v.backends.filter((b) => b.state === 'active').map((b) => b.address);
  /** Until no backend drains: the daemon frees drained backends half a second after a change. */
  const settled = async () => {
    for (let i = 0; i < 100 && vips().some((v) => v.backends.some((b) => b.state === 'draining')); i++) await new Promise((r) => setTimeout(r, 50));
  };
  /** Write the config as an editor or a ConfigMap update does: a new file renamed over the old. */
  const writeConfig = (c: unknown) => {
    writeFileSync(`${file}.tmp`, typeof c === 'string' ? c : JSON.stringify(c));
    renameSync(`${file}.tmp`, file);
  };
  const start = (...extra: string[]): Proc => {
    const child = spawn(process.execPath, [KPBPF, '--bpffs', bpffs, 'run', '-f', file, '--metrics', '127.0.0.1:0', '--healthcheck-address', '127.0.0.1', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(child);
    const { lines, waitLog } = watchLog(child);
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    return { child, logs: () => lines, waitLog, exited };
  };
  const svc = (backends: string[]) => ({ vips: [{ prefix: '198.18.100.10/32', protocol: 'udp', port: 53, target_port: 5353, backends }] });
  let metricsAt = '';
  const scrape = async (path = '/metrics') => {
    const r = await fetch(`http://${metricsAt}${path}`);
    return { status: r.status, text: await r.text() };
  };
  const metric = (text: string, name: string, labels = ''): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}` : ''}`) && (labels || /^\S+ /.test(l)));
    return line ? Number(line.split(' ').pop()) : NaN;
  };

  let d: Proc;
  t.test('starts, applies the file and logs JSON lines', async (t) => {
    writeConfig(svc(['198.18.1.2']));
    d = start();
    const served = await d.waitLog((l) => typeof l.metrics === 'string');
    metricsAt = served.metrics as string;
    await d.waitLog((l) => l.msg === 'applied');
    t.match(vips(), [{ prefix: '198.18.100.10/32', port: 53, backends: [{ address: '198.18.1.2' }] }]);
    t.ok(d.logs().every((l) => typeof l.level === 'number' && typeof l.time === 'string'), 'pino lines: level and time on every one');
  });

  t.test('another writer is refused with the owner named; show keeps working', async (t) => {
    const r = kp('vip', 'del', '198.18.100.10/32');
    t.equal(r.code, 1);
    t.match(r.err, /kpbpf run -f \S+config\.json \(pid \d+\) owns .*: change its config file instead/);
    t.equal(vips().length, 1, 'show works and nothing changed');
  });

  t.test('a changed file is applied: only its difference', async (t) => {
    writeConfig(svc(['198.18.1.2', '198.18.2.2']));
    const l = await d.waitLog((x) => x.msg === 'applied' && x.why === 'file changed');
    t.same(l.ops, ['backend add 198.18.100.10/32 udp port 53 198.18.2.2 weight 1']);
    t.equal(l.parsed, 'one vip', "one VIP's text changed: that VIP alone was parsed and checked");
    t.same(vips()[0].backends.map((b) => b.address), ['198.18.1.2', '198.18.2.2']);
    // A bad value in that one VIP: the whole file is parsed and refused with the path, nothing changes.
    let from = d.logs().length;
    writeConfig({ vips: [{ ...svc([]).vips[0], port: 99999, backends: ['198.18.1.2', '198.18.2.2'] }] });
    const bad = await d.waitLog((x) => x.msg === 'config refused; the running state is unchanged', 10_000, from);
    t.match(bad.details, ['/vips/0/port: must be <= 65535, got 99999']);
    t.same(vips()[0].backends.map((b) => b.address), ['198.18.1.2', '198.18.2.2']);
    from = d.logs().length;
    writeConfig(svc(['198.18.1.2', '198.18.2.2', '198.18.3.2']));
    const next = await d.waitLog((x) => x.msg === 'applied' && x.why === 'file changed', 10_000, from);
    t.same(next.ops, ['backend add 198.18.100.10/32 udp port 53 198.18.3.2 weight 1'], 'after a refused file the next one applies');
    writeConfig(svc(['198.18.1.2', '198.18.2.2']));
    await d.waitLog((x) => x.msg === 'applied' && x.why === 'file changed' && JSON.stringify(x.ops).includes('backend del'), 10_000, from);
  });

  t.test('an invalid file is refused with every error, and the running state stays', async (t) => {
    await settled();
    const before = vips();
    const from = d.logs().length; // earlier tests were refused too
    writeConfig('{"vips": [{"prefix": "198.18.100.10/32", "port": 99999, "new_len": 1000}]}');
    const l = await d.waitLog((x) => x.msg === 'config refused; the running state is unchanged', 10_000, from);
    t.match([...(l.details as string[])].sort(), [/\/vips\/0\/new_len: must be a prime number, got 1000/, /\/vips\/0\/port: must be <= 65535, got 99999/], 'both errors, with their paths');
    t.same(vips(), before);
    writeConfig('{"vips": [], "vips": []}');
    const dup = await d.waitLog((x) => x.msg === 'config refused; the running state is unchanged' && JSON.stringify(x.details).includes('given twice'), 10_000, from);
    t.ok(dup, 'duplicate keys too');
    t.same(vips(), before);
    const h = await scrape('/healthz');
    t.equal(h.status, 503, 'unhealthy while the last file failed');
    t.match(JSON.parse(h.text), { healthy: false, lastError: /invalid config, 1 problem; nothing was applied: \/vips: the key "vips" is given twice/ });
    // The running text again, byte for byte: applied (nothing changes) rather than skipped as the
    // same text, so the error is gone (it stayed, and /healthz 503, until another change).
    const back = d.logs().length;
    writeConfig(svc(['198.18.1.2', '198.18.2.2']));
    const l2 = await d.waitLog((x) => x.msg === 'no changes' && x.why === 'file changed', 10_000, back);
    t.ok(l2, 'the reverted file is applied: no changes');
    t.notOk('lastError' in JSON.parse((await scrape('/healthz')).text), 'no error any more');
    t.same(vips(), before);
  });

  t.test('the corpus of bad files: each refused with where and what, the running state unchanged', async (t) => {
    const before = vips();
    let from = d.logs().length;
    for (const c of BAD_CONFIGS) {
      writeFileSync(file, c.body);
      d.child.kill('SIGHUP'); // also for a file whose text equals the last refused one
      const l = await d.waitLog((x) => x.msg === 'config refused; the running state is unchanged' && x.why === 'SIGHUP', 10_000, from);
      from = d.logs().indexOf(l) + 1;
      t.match([l.error, ...((l.details as string[]) ?? [])].join('\n'), c.want, c.name);
    }
    t.same(vips(), before, 'nothing changed');
    t.equal(d.logs().filter((l) => /^not JSON/.test(String(l.msg))).length, 0, 'every log line is JSON (no stack trace)');
  });

  t.test('SIGHUP applies the file again; the next valid file applies', async (t) => {
    const from = d.logs().length;
    writeFileSync(file, JSON.stringify(svc(['198.18.2.2'])));
    d.child.kill('SIGHUP');
    // The write may have been applied already by the file watch; SIGHUP then finds nothing to do.
    await d.waitLog((x) => (x.msg === 'applied' || x.msg === 'no changes') && x.why === 'SIGHUP');
    // The removed backend drains; no connection uses it, so it is freed soon after.
    await d.waitLog((x) => x.msg === 'drained backends freed (no connection uses them)', 10_000, from);
    t.same(vips()[0].backends.map((b) => b.address), ['198.18.2.2']);
  });

  t.test("a health-check node port answers with the VIP's local endpoints: 200 with some, 503 with none", async (t) => {
    const HC = 30999;
    const withHc = (local: boolean) => ({
      vips: [
        ...svc(['198.18.2.2']).vips,
        { prefix: '198.18.100.11/32', protocol: 'tcp', port: 80, node_port: 30998, external_traffic_policy: 'local', health_check_node_port: HC, name: 'default/web', backends: [{ address: '198.18.3.2', local }] },
      ],
    });
    writeConfig(withHc(true));
    await d.waitLog((x) => x.msg === 'health check listening' && x.healthCheckNodePort === HC);
    let r = await fetch(`http://127.0.0.1:${HC}/healthz`);
    t.equal(r.status, 200);
    t.match(await r.json(), { service: { namespace: 'default', name: 'web' }, localEndpoints: 1 });
    const mark = d.logs().length;
    writeConfig(withHc(false));
    await d.waitLog((x) => x.msg === 'applied' && JSON.stringify(x.ops).includes('198.18.3.2'), 10_000, mark);
    r = await fetch(`http://127.0.0.1:${HC}/healthz`);
    t.equal(r.status, 503, 'no local endpoint');
    t.match(await r.json(), { localEndpoints: 0 });
    writeConfig(svc(['198.18.2.2']));
    await d.waitLog((x) => x.msg === 'health check closed' && x.healthCheckNodePort === HC);
    await t.rejects(fetch(`http://127.0.0.1:${HC}/healthz`), 'closed with its VIP');
    t.same(vips().map((v) => v.prefix), ['198.18.100.10/32']);
  });

  t.test('/metrics: counters equal the maps after traffic, reloads and apply latency', async (t) => {
    const dp = openPinned(`${bpffs}/kpbpf`);
    try {
      for (let i = 0; i < 5; i++) testRun(dp.progFd, buildPacket({ src: '198.18.0.9', dst: '198.18.100.10', proto: 'udp', sport: 40000 + i, dport: 53, payload: Buffer.from('q') }));
    } finally {
      dp.close();
    }
    const stats = JSON.parse(kp('--json', 'show', 'stats').out);
    const m = (await scrape()).text;
    const labels = 'vip="198.18.100.10/32",protocol="udp",port="53"';
    t.equal(metric(m, 'kpbpf_vip_packets_total', `${labels},kind="first"`), stats.vips[0].counters.firstPkts);
    t.equal(stats.vips[0].counters.firstPkts, 5, 'five new flows');
    t.equal(metric(m, 'kpbpf_vip_bytes_total', labels), stats.vips[0].counters.bytes);
    t.equal(metric(m, 'kpbpf_backend_packets_total', `${labels},backend="198.18.2.2:5353"`), 5);
    t.equal(metric(m, 'kpbpf_packets_total', 'reason="dnat"'), stats.global.dnat);
    t.equal(metric(m, 'kpbpf_conntrack_entries'), 10, 'two entries per connection');
    t.ok(metric(m, 'kpbpf_reloads_total') >= 3, 'start, change, SIGHUP');
    t.ok(metric(m, 'kpbpf_reload_failures_total') >= 2 + BAD_CONFIGS.length, 'two refused files, then the corpus');
    t.ok(metric(m, 'kpbpf_apply_duration_seconds_count') >= 5);
    const h = await scrape('/healthz');
    t.equal(h.status, 503, 'nothing attached: not healthy');
    t.match(JSON.parse(h.text), { healthy: false, attached: [], lastSync: /T/ });
  });

  t.test('the config directory replaced whole: the new one is watched and its file applied', async (t) => {
    const from = d.logs().length;
    const next = `${dir}-next`;
    mkdirSync(next);
    writeFileSync(`${next}/config.json`, JSON.stringify(svc(['198.18.2.2', '198.18.5.2'])));
    rmSync(dir, { recursive: true, force: true }); // its watch ends with it
    renameSync(next, dir);
    const l = await d.waitLog((x) => x.msg === 'applied' && String(x.why).startsWith('file changed'), 15_000, from);
    t.same(l.ops, ['backend add 198.18.100.10/32 udp port 53 198.18.5.2 weight 1']);
    const later = d.logs().length;
    writeConfig(svc(['198.18.2.2'])); // a change in the new directory is seen at once
    const back = await d.waitLog((x) => x.msg === 'applied' && x.why === 'file changed', 5_000, later);
    t.same(back.ops, ['backend del 198.18.100.10/32 udp port 53 198.18.5.2']);
  });

  t.test('SIGTERM: exits, the data plane stays pinned with its state', async (t) => {
    d.child.kill('SIGTERM');
    t.equal(await d.exited, 0);
    t.same(active(vips()[0]), ['198.18.2.2'], 'still there');
    t.equal(kp('vip', 'add', '198.18.100.20/32', 'port', '80').code, 0, 'the lock is released');
    kp('vip', 'del', '198.18.100.20/32');
  });

  t.test('SIGKILL, then a new daemon adopts the pins without touching connections', async (t) => {
    const a = start();
    await a.waitLog((l) => l.msg === 'no changes' || l.msg === 'applied');
    a.child.kill('SIGKILL');
    await a.exited;
    const before = JSON.parse(kp('--json', 'show', 'flows', '--limit', '100').out);
    t.equal(before.length, 5, 'the five connections');
    const b = start();
    const l = await b.waitLog((x) => x.msg === 'no changes' || x.msg === 'applied');
    t.equal(l.msg, 'no changes', 'the pinned state already matches the file');
    t.same(JSON.parse(kp('--json', 'show', 'flows', '--limit', '100').out).map((f: { client: string; backend: string }) => [f.client, f.backend]), before.map((f: { client: string; backend: string }) => [f.client, f.backend]));
    b.child.kill('SIGTERM');
    t.equal(await b.exited, 0);
  });

  t.test('conf buckets changed in the file: the connection table is resized, its connections kept', async (t) => {
    const flows = () => (JSON.parse(kp('--json', 'show', 'flows', '--limit', '100').out) as { client: string; backend: string }[]).map((f) => `${f.client} ${f.backend}`).sort();
    const before = flows();
    t.equal(before.length, 5);
    writeConfig(svc(['198.18.2.2']));
    const d2 = start();
    t.teardown(async () => {
      if (d2.child.exitCode === null) d2.child.kill('SIGTERM');
      await d2.exited;
    });
    await d2.waitLog((x) => x.msg === 'no changes' || x.msg === 'applied');
    const from = d2.logs().length;
    const buckets = JSON.parse(kp('--json', 'show', 'conf').out).buckets as number;
    writeConfig({ conf: { buckets: buckets * 2 }, ...svc(['198.18.2.2']) });
    const l = await d2.waitLog((x) => x.msg === 'applied' && x.why === 'file changed', 10_000, from);
    t.match(l.ops, [`conf buckets ${buckets * 2}`]);
    t.equal(JSON.parse(kp('--json', 'show', 'conf').out).buckets, buckets * 2, 'resized (a reload of the program over the other maps)');
    t.same(flows(), before, 'the connections, on their backends');
    writeConfig(svc(['198.18.2.2'])); // back to the default size
    const next = d2.logs().indexOf(l) + 1; // after the first resize's line
    await d2.waitLog((x) => x.msg === 'applied' && x.why === 'file changed' && JSON.stringify(x.ops).includes('conf buckets'), 10_000, next);
    t.same(flows(), before, 'and back');
    d2.child.kill('SIGTERM');
    t.equal(await d2.exited, 0);
  });

  t.test('a ConfigMap volume update (its ..data symlink swapped) is applied', async (t) => {
    // The kubelet's layout: config.json -> ..data/config.json, ..data -> ..<timestamp>/, swapped at once.
    const cm = `${dir}/cm`;
    mkdirSync(`${cm}/..v1`, { recursive: true });
    writeFileSync(`${cm}/..v1/config.json`, JSON.stringify(svc(['198.18.2.2'])));
    symlinkSync('..v1', `${cm}/..data`);
    symlinkSync('..data/config.json', `${cm}/config.json`);
    const child = spawn(process.execPath, [KPBPF, '--bpffs', bpffs, 'run', '-f', `${cm}/config.json`, '--no-metrics'], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(child);
    let log = '';
    child.stderr!.on('data', (x) => (log += x));
    const wait = async (re: RegExp) => {
      for (let i = 0; i < 400 && !re.test(log); i++) await new Promise((r) => setTimeout(r, 25));
      return re.test(log);
    };
    t.ok(await wait(/"msg":"(no changes|applied)"/), 'started');
    mkdirSync(`${cm}/..v2`);
    writeFileSync(`${cm}/..v2/config.json`, JSON.stringify(svc(['198.18.2.2', '198.18.4.2'])));
    symlinkSync('..v2', `${cm}/..data_tmp`);
    renameSync(`${cm}/..data_tmp`, `${cm}/..data`);
    t.ok(await wait(/"why":"file changed".*"msg":"applied"|"msg":"applied".*"why":"file changed"/), `the swap was seen: ${log.slice(-400)}`);
    t.same(active(vips()[0]).sort(), ['198.18.2.2', '198.18.4.2']);
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
  });

  t.test('a bad --metrics is refused before anything runs', async (t) => {
    const r = kp('run', '-f', file, '--metrics', 'localhost:notaport');
    t.equal(r.code, 2);
    t.match(r.err, /--metrics: expected \[ADDR:\]PORT/);
  });

  t.test('a SIGHUP while the first apply runs does not end the daemon', async (t) => {
    // KPBPF_INJECT raises the SIGHUP at the first apply (src/inject.ts): it used to come before the
    // handlers were installed, and its default action ended the process in the middle of the apply.
    writeConfig(svc(['198.18.1.2', '198.18.2.2']));
    // Through env -u NODE_OPTIONS: tap puts its process-info hook into every child it sees spawned,
    // and that hook handles SIGHUP.
    const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, KPBPF, '--bpffs', bpffs, 'run', '-f', file, '--no-metrics'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KPBPF_INJECT: 'run.first-apply=hup' } });
    procs.push(child);
    const { waitLog } = watchLog(child);
    const exited = new Promise<number | null>((r) => child.on('exit', (code, sig) => r(sig ? -1 : code)));
    const first = await waitLog((l) => (l.msg === 'applied' || l.msg === 'no changes') && l.why === 'start', 20_000);
    t.ok(first, 'the first apply finished');
    const again = await waitLog((l) => (l.msg === 'applied' || l.msg === 'no changes') && l.why === 'SIGHUP', 20_000);
    t.equal(again.msg, 'no changes', 'the SIGHUP was taken as one: the file applied again, nothing to change');
    t.equal(child.exitCode, null, 'still running');
    child.kill('SIGTERM');
    t.equal(await exited, 0);
  });
}
