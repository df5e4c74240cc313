// kpbpf run --kubernetes against the fake API server (HTTPS, in a namespace of its own) holding N
// Services with 8 endpoints each, one EndpointSlice a service: from the process's start to the
// data plane programmed, resident memory, one-endpoint EndpointSlice changes from the watch event to
// the maps (the daemon's own clock) and from the API write to the daemon's log line, and a relist
// of everything. Baselines from the same run: a process that only lists the same objects (the floor
// of any API-driven proxy's start), and one that only watches EndpointSlices (the floor of a change).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './sh.js';
import { kpbpfArgv, kpbpfMissing, REPO } from './dataplanes.js';
import { kpbpfConfig, makeServices, type Service } from './rulesets.js';
import { rssOf } from './control.js';
import { makeCerts, writeKubeconfig } from '../testbed/certs.js';

export interface KubeRow {
  services: number;
  /** spawn of kpbpf run --kubernetes to its "synced" log line */
  startMs?: number;
  /** the daemon's own: lists done to synced (translate, validate, diff, maps) */
  syncMs?: number;
  /** the lists, as the daemon logged them */
  listMs?: number;
  /** baseline: a process that lists the same Services and EndpointSlices (same client) and exits */
  listFloorMs?: number;
  /** resident after the first sync settled (read after the changes below, a second or two later) */
  rssBytes?: number;
  /** resident at the first sync's log line */
  rssSyncBytes?: number;
  /** one-endpoint changes, the daemon's own time from the watch event to the maps */
  changeEventMs?: number[];
  /** the same changes from the API write (the command to the server) to the daemon's log line */
  changeWriteMs?: number[];
  /** baseline: the same writes seen by a process that only watches EndpointSlices */
  changeFloorMs?: number[];
  changeWarmup?: number;
  /** baseline: kpbpf run -f with the same services in a file, spawn to its "applied" line, and its resident memory 2 s later */
  fileStartMs?: number;
  fileRssBytes?: number;
  /** a relist of everything: its time, and whether anything was applied */
  relistMs?: number;
  relistApplied?: number;
  unavailable?: string;
  error?: string;
}

export const KUBE_CHANGES = 100;
export const KUBE_WARMUP = 5;
const NODE = 'bench-node';

function k8sObjects(services: Service[]): { services: object[]; endpointslices: object[]; nodes: object[] } {
  const meta = (name: string, extra: object = {}) => ({ name, namespace: 'bench', creationTimestamp: '2026-12-01T00:00:00Z', ...extra });
  return {
    services: services.map((s, i) => ({
      metadata: meta(`svc${i}`),
      spec: { type: 'ClusterIP', clusterIP: s.vip, clusterIPs: [s.vip], ipFamilies: ['IPv4'], ports: [{ name: 'p', port: s.port, protocol: s.proto.toUpperCase(), targetPort: s.targetPort }] },
    })),
    endpointslices: services.map((s, i) => slice(i, s, s.endpoints)),
    nodes: [{ metadata: { name: NODE, labels: {} }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } }],
  };
}

function slice(i: number, s: Service, endpoints: string[]) {
  return {
    metadata: { name: `svc${i}-1`, namespace: 'bench', creationTimestamp: '2026-12-01T00:00:00Z', labels: { 'kubernetes.io/service-name': `svc${i}` } },
    addressType: 'IPv4',
    endpoints: endpoints.map((a, j) => ({ addresses: [a], conditions: { ready: true, serving: true, terminating: false }, nodeName: j === 0 ? NODE : 'other' })),
    ports: [{ name: 'p', port: s.targetPort, protocol: s.proto.toUpperCase() }],
  };
}

interface Proc {
  child: ChildProcess;
  lines: Array<Record<string, unknown> & { at: number }>;
  waitFor(pred: (l: Record<string, unknown>) => boolean, from: number, ms?: number): Promise<Record<string, unknown> & { at: number }>;
}

/** A child's JSON lines (stdout or stderr), each with its arrival time. */
function jsonLines(child: ChildProcess, stream: 'stdout' | 'stderr'): Proc {
  const lines: Proc['lines'] = [];
  let buf = '';
  child[stream]!.on('data', (d: Buffer) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (process.env.KPBENCH_LOGS) appendFileSync(join(process.env.KPBENCH_LOGS, `${child.pid}.log`), `${performance.now().toFixed(1)} ${text}\n`);
      try {
        lines.push({ ...(JSON.parse(text) as Record<string, unknown>), at: performance.now() });
      } catch {
        lines.push({ msg: `not JSON: ${text.slice(0, 200)}`, at: performance.now() });
      }
    }
  });
  const waitFor = async (pred: (l: Record<string, unknown>) => boolean, from: number, ms = 120_000) => {
    const end = performance.now() + ms;
    for (;;) {
      const hit = lines.slice(from).find(pred);
      if (hit) return hit;
      if (performance.now() > end || child.exitCode !== null) throw new Error(`no such line (last: ${JSON.stringify(lines.slice(-3)).slice(0, 600)})`);
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  return { child, lines, waitFor };
}

const LIST_FLOOR = `
const { KubeClient } = await import(process.argv[1]);
const { kubeconfigConnection } = await import(process.argv[2]);
const c = new KubeClient(kubeconfigConnection(process.argv[3]));
const sel = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';
const [a, b] = await Promise.all([c.list('/api/v1/services', { labelSelector: sel }), c.list('/apis/discovery.k8s.io/v1/endpointslices', { labelSelector: sel })]);
console.log(JSON.stringify({ services: a.items.length, slices: b.items.length }));
c.close();`;

const WATCH_FLOOR = `
const { KubeClient } = await import(process.argv[1]);
const { kubeconfigConnection } = await import(process.argv[2]);
const c = new KubeClient(kubeconfigConnection(process.argv[3]));
const l = await c.list('/apis/discovery.k8s.io/v1/endpointslices', { fieldSelector: 'metadata.name=no-such-slice' });
console.error(JSON.stringify({ msg: 'watching' }));
await c.watch('/apis/discovery.k8s.io/v1/endpointslices', { resourceVersion: l.resourceVersion, timeoutSeconds: 600 }, (e) => console.error(JSON.stringify({ msg: 'event', name: e.object.metadata.name })));`;

export async function runKube(sizes: number[], o: { bpffs: string; say: (m: string) => void }): Promise<KubeRow[]> {
  const rows: KubeRow[] = [];
  for (const n of sizes) {
    const row: KubeRow = { services: n };
    rows.push(row);
    const missing = kpbpfMissing();
    if (missing) {
      row.unavailable = missing;
      continue;
    }
    try {
      await kubeRow(n, o.bpffs, row);
      o.say(`kube ${n}: start ${row.startMs?.toFixed(0)} ms, relist ${row.relistMs} ms`);
    } catch (e) {
      row.error = (e as Error).message;
      o.say(`kube ${n}: ${row.error}`);
    }
  }
  return rows;
}

async function kubeRow(n: number, bpffs: string, row: KubeRow): Promise<void> {
  const ns = `kpkube${process.pid % 100000}`;
  const tmp = mkdtempSync(join(tmpdir(), 'kpbench-kube-'));
  const dir = join(bpffs, `kube${n}`);
  mkdirSync(dir, { recursive: true });
  const children: ChildProcess[] = [];
  const inNs = (argv: string[], env: Record<string, string> = {}) => {
    const c = spawn('ip', ['netns', 'exec', ns, 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(c);
    return c;
  };
  await run(['ip', 'netns', 'add', ns]);
  try {
    await run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const services = makeServices(n, { proto: 'tcp' });
    const objs = k8sObjects(services);
    writeFileSync(join(tmp, 'state.json'), JSON.stringify(objs));
    const certs = makeCerts(['127.0.0.1'], mkdtempSync(join(tmp, 'certs-')));
    writeFileSync(join(tmp, 'server.crt'), certs.cert);
    writeFileSync(join(tmp, 'server.key'), certs.key);
    writeFileSync(join(tmp, 'token'), 'bench-token\n');
    const kubeconfig = join(tmp, 'kubeconfig');
    writeKubeconfig(kubeconfig, 'https://127.0.0.1:6443', certs.caFile, join(tmp, 'token'));
    writeFileSync(join(tmp, 'conf.json'), JSON.stringify({ conf: { buckets: 65536 } }));
    const api = jsonLines(inNs([process.execPath, join(REPO, 'dist/testbed/fakeapi-main.js'), '127.0.0.1', '6443', join(tmp, 'server.crt'), join(tmp, 'server.key'), 'bench-token'], { FAKEAPI_STATE: join(tmp, 'state.json') }), 'stdout');
    await api.waitFor((l) => 'listening' in l, 0);
    let id = 0;
    const call = async (cmd: Record<string, unknown>) => {
      const my = ++id;
      const from = api.lines.length;
      api.child.stdin!.write(JSON.stringify({ id: my, ...cmd }) + '\n');
      return api.waitFor((l) => l.id === my, from);
    };
    const clientJs = join(REPO, 'dist/kube/client.js');
    const connJs = join(REPO, 'dist/kube/connection.js');

    // The floor of a start: the same lists by a process that does nothing else.
    const l0 = performance.now();
    await run(['ip', 'netns', 'exec', ns, process.execPath, '--input-type=module', '-e', LIST_FLOOR, clientJs, connJs, kubeconfig], { timeoutMs: 120_000 });
    row.listFloorMs = performance.now() - l0;

    const t0 = performance.now();
    const d = jsonLines(inNs([...kpbpfArgv(dir, 'run', '--kubernetes', '--kubeconfig', kubeconfig, '--node-name', NODE, '-f', join(tmp, 'conf.json'), '--no-metrics', '--no-healthz')]), 'stderr');
    try {
      const synced = await d.waitFor((l) => l.msg === 'synced', 0);
      row.startMs = synced.at - t0;
      row.syncMs = (synced.ms as { total: number }).total;
      row.listMs = Math.max(...d.lines.filter((l) => l.msg === 'listed').map((l) => l.ms as number));
      row.rssSyncBytes = rssOf(d.child.pid);

      // One endpoint replaced in the last service's slice, KUBE_WARMUP + KUBE_CHANGES times.
      const last = services.length - 1;
      const change = (i: number) => slice(last, services[last], [`198.18.255.${200 + (i % 50)}`, ...services[last].endpoints.slice(1)]);
      const event: number[] = [];
      const write: number[] = [];
      for (let i = 0; i < KUBE_WARMUP + KUBE_CHANGES; i++) {
        const from = d.lines.length;
        const w0 = performance.now();
        void call({ op: 'put', resource: 'endpointslices', object: change(i) });
        const l = await d.waitFor((x) => x.msg === 'applied', from);
        const ms = l.ms as { queued: number; apply: number };
        if (i >= KUBE_WARMUP) {
          event.push(ms.queued + ms.apply);
          write.push(l.at - w0);
        }
      }
      row.changeWarmup = KUBE_WARMUP;
      // Resident once the first sync has settled: the changes took a second or two after it.
      row.rssBytes = rssOf(d.child.pid);
      // KPBENCH_LOGS=DIR keeps each child's log lines and the daemon's memory map there (for a heap
      // snapshot as well: NODE_OPTIONS=--heapsnapshot-signal=SIGUSR2 and a signal at this point).
      if (process.env.KPBENCH_LOGS) writeFileSync(join(process.env.KPBENCH_LOGS, 'memory'), ['status', 'smaps_rollup', 'smaps'].map((f) => readFileSync(`/proc/${d.child.pid}/${f}`, 'utf8')).join(''));
      row.changeEventMs = event;
      row.changeWriteMs = write;

      // A relist of everything: the watch ends and its version is gone (410), as after an API server restart.
      const from = d.lines.length;
      // (the Node written once more, so that every watch's version is older than the history kept)
      await call({ op: 'put', resource: 'nodes', object: objs.nodes[0] });
      await call({ op: 'compact' });
      await call({ op: 'endWatches' });
      const done = await Promise.all(['services', 'endpointslices'].map((r) => d.waitFor((l) => l.msg === 'relisted' && l.resource === r, from)));
      await new Promise((r) => setTimeout(r, 200));
      row.relistMs = Math.max(...done.map((l) => l.ms as number));
      row.relistApplied = d.lines.slice(from).filter((l) => l.msg === 'applied').length;
    } finally {
      d.child.kill('SIGTERM');
      if (d.child.exitCode === null) await new Promise((r) => d.child.on('exit', r));
    }

    // The baseline of a start: the file daemon with the same services (its own data plane).
    const file = join(tmp, 'services.json');
    writeFileSync(file, JSON.stringify(kpbpfConfig(services, { buckets: 65536 })));
    const fdir = join(bpffs, `kubefile${n}`);
    mkdirSync(fdir, { recursive: true });
    const f0 = performance.now();
    const fd = jsonLines(inNs(kpbpfArgv(fdir, 'run', '-f', file, '--no-metrics')), 'stderr');
    try {
      const applied = await fd.waitFor((l) => l.msg === 'applied', 0);
      row.fileStartMs = applied.at - f0;
      await new Promise((r) => setTimeout(r, 2000)); // settled, as the Kubernetes row's is read
      row.fileRssBytes = rssOf(fd.child.pid);
    } finally {
      fd.child.kill('SIGTERM');
      if (fd.child.exitCode === null) await new Promise((r) => fd.child.on('exit', r));
      await run(kpbpfArgv(fdir, 'detach', '--purge'), { allowFail: true, timeoutMs: 60_000 });
      rmSync(fdir, { recursive: true, force: true });
    }

    // The floor of a change: the same writes seen by a process that only watches.
    const w = jsonLines(inNs([process.execPath, '--input-type=module', '-e', WATCH_FLOOR, clientJs, connJs, kubeconfig]), 'stderr');
    await w.waitFor((l) => l.msg === 'watching', 0);
    const floor: number[] = [];
    for (let i = 0; i < KUBE_WARMUP + KUBE_CHANGES; i++) {
      const from = w.lines.length;
      const w0 = performance.now();
      void call({ op: 'put', resource: 'endpointslices', object: slice(services.length - 1, services[services.length - 1], [`198.18.255.${100 + (i % 50)}`]) });
      const l = await w.waitFor((x) => x.msg === 'event', from);
      if (i >= KUBE_WARMUP) floor.push(l.at - w0);
    }
    row.changeFloorMs = floor;
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await run(kpbpfArgv(dir, 'detach', '--purge'), { allowFail: true, timeoutMs: 60_000 });
    await run(['ip', 'netns', 'del', ns], { allowFail: true });
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The q-quantile (0..1) of samples, nearest rank. */
export function quantile(samples: number[], q: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}
