// Control plane: time to load N services (full) and to change one endpoint (incremental), for
// kpbpf apply, iptables-legacy/nft-restore and nft -f, each in its own fresh namespace; and the
// kernel's own accounting of kpbpf's map memory.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './sh.js';
import { kpbpfArgv, kpbpfMissing } from './dataplanes.js';
import { iptablesEndpointChange, iptablesRestore, kpbpfConfig, makeServices, nftEndpointChange, nftRuleset, type Service } from './rulesets.js';

export type ControlTool = 'kpbpf' | 'kpbpf run' | 'iptables-legacy' | 'iptables-nft' | 'nft';
export const CONTROL_TOOLS: ControlTool[] = ['kpbpf', 'kpbpf run', 'iptables-legacy', 'iptables-nft', 'nft'];

export interface ControlRow {
  tool: ControlTool;
  services: number;
  fullMs?: number;
  changeMs?: number;
  capped?: boolean;
  verified?: string; // how we know the state holds it
  mapBytes?: number; // kpbpf: sum of bytes_memlock of its maps (incl. the Maglev store)
  /** kpbpf run: its own time for the full sync (read, validate, diff, apply; no start-up or program load) */
  syncMs?: number;
  /** kpbpf run: the changes measured (changeMs is their median) and their range */
  changeSamples?: number[];
  /** kpbpf run: the first changes after the full sync, made before those measured */
  changeWarmup?: number[];
  /** kpbpf run: resident memory after the full sync */
  rssBytes?: number;
  /** kpbpf run: the same changes seen by a process that only reads the file (the floor: the write,
   * the directory watch, one read of the file and a log line through a pipe), median */
  changeFloorMs?: number;
  /** kpbpf run: the full sync's read and check, made on the helper thread while the program loaded */
  syncAsideMs?: number;
  unavailable?: string;
  error?: string;
}

const NEW_EP = '198.18.255.250';

async function timed(argv: string[], ns: string, input: string | undefined, capMs: number): Promise<{ ms: number; capped: boolean }> {
  const r = await run(argv, { ns, input, timeoutMs: capMs, allowFail: true });
  if (!r.timedOut && r.code !== 0) throw new Error(`${argv.slice(0, 4).join(' ')}: ${r.stderr.trim().slice(0, 300)}`);
  return { ms: r.ms, capped: r.timedOut };
}

/** bytes_memlock of every map pinned in dir, plus the Maglev store kp_maglev_store points to. */
export async function kpbpfMapBytes(dir: string): Promise<number> {
  const all = JSON.parse((await run(['bpftool', '-j', 'map', 'show'], { timeoutMs: 60_000 })).stdout) as { id: number; bytes_memlock?: number }[];
  const byId = new Map(all.map((m) => [m.id, m.bytes_memlock ?? 0]));
  const ids = new Set<number>();
  for (const name of readdirSync(dir)) {
    const r = await run(['bpftool', '-j', 'map', 'show', 'pinned', join(dir, name)], { allowFail: true });
    if (r.code === 0) ids.add(JSON.parse(r.stdout).id);
  }
  const inner = await run(['bpftool', '-j', 'map', 'dump', 'pinned', join(dir, 'kp_maglev_store')], { allowFail: true, timeoutMs: 120_000 });
  if (inner.code === 0) {
    for (const e of JSON.parse(inner.stdout) as { value?: unknown; formatted?: { value?: unknown } }[]) {
      const v = e.formatted?.value ?? e.value;
      const id = typeof v === 'number' ? v : Array.isArray(v) ? Buffer.from((v as string[]).map((x) => parseInt(x, 16))).readUInt32LE(0) : NaN;
      if (Number.isFinite(id)) ids.add(id);
    }
  }
  let sum = 0;
  for (const id of ids) sum += byId.get(id) ?? 0;
  return sum;
}

async function kpbpfRow(services: Service[], ns: string, bpffs: string, capMs: number, row: ControlRow): Promise<void> {
  const missing = kpbpfMissing();
  if (missing) {
    row.unavailable = missing;
    return;
  }
  const dir = join(bpffs, `ctl${services.length}`);
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'kpbench-ctl-'));
  try {
    const write = (name: string, svcs: Service[]) => {
      const p = join(tmp, name);
      writeFileSync(p, JSON.stringify(kpbpfConfig(svcs, { buckets: 65536 })));
      return p;
    };
    // Load the program first, so the timings below are only about the config.
    await run(kpbpfArgv(dir, 'apply', '-f', write('empty.json', [])), { ns, timeoutMs: 120_000 });
    const full = await timed(kpbpfArgv(dir, 'apply', '-f', write('full.json', services)), ns, undefined, capMs);
    row.fullMs = full.ms;
    row.capped = full.capped;
    if (full.capped) return;
    const last = services[services.length - 1];
    const changed = services.map((s) => (s === last ? { ...s, endpoints: [NEW_EP, ...s.endpoints.slice(1)] } : s));
    row.changeMs = (await timed(kpbpfArgv(dir, 'apply', '-f', write('change.json', changed)), ns, undefined, capMs)).ms;
    const vips = JSON.parse((await run(kpbpfArgv(dir, '--json', 'show', 'vips'), { ns, timeoutMs: 120_000 })).stdout);
    const list = Array.isArray(vips) ? vips : vips.vips;
    const backends = list.reduce((a: number, v: { backends?: unknown[] }) => a + (v.backends?.length ?? 0), 0);
    row.verified = `show vips: ${list.length} VIPs, ${backends} backends`;
    row.mapBytes = await kpbpfMapBytes(join(dir, 'kpbpf')); // the CLI pins under <bpffs>/kpbpf
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Changes measured through kpbpf run; the row reports their median. */
export const DAEMON_CHANGES = 15;
/** Changes made first and not counted: the first few after a full sync run code the JIT has not
 * optimized yet (the first takes about 40 ms); a daemon spends its life past them. */
export const DAEMON_WARMUP = 5;

/** A process that does what the daemon must at least do for a change: see the directory event, read
 * the file, compare it with the last one, and write a log line. */
const FLOOR_WATCHER = `
const fs = require('fs'), path = require('path');
const file = process.argv[1];
let last = fs.readFileSync(file);
fs.watch(path.dirname(file), () => setImmediate(() => {
  const b = fs.readFileSync(file);
  if (b.equals(last)) return;
  last = b;
  process.stderr.write(JSON.stringify({ msg: 'applied', why: 'file changed' }) + '\\n');
}));
process.stderr.write('{"msg":"no changes"}\\n');`;

/**
 * The long-running kpbpf: `kpbpf run -f FILE` applies the full config, then the file is replaced
 * DAEMON_WARMUP + DAEMON_CHANGES times with a one-endpoint change; each change is timed from the start of the
 * write (its bytes made before) to its "applied" log line as the log arrives (file watch, read,
 * validation, diff, maps). The same changes are then timed with FLOOR_WATCHER in the daemon's place.
 */
async function daemonRow(services: Service[], ns: string, bpffs: string, capMs: number, row: ControlRow): Promise<void> {
  const missing = kpbpfMissing();
  if (missing) {
    row.unavailable = missing;
    return;
  }
  const dir = join(bpffs, `run${services.length}`);
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'kpbench-run-'));
  const file = join(tmp, 'config.json');
  const text = (svcs: Service[]) => Buffer.from(JSON.stringify(kpbpfConfig(svcs, { buckets: 65536 })));
  const put = (body: Buffer) => {
    writeFileSync(`${file}.new`, body);
    renameSync(`${file}.new`, file);
  };
  const last = services[services.length - 1];
  const bodies = Array.from({ length: DAEMON_WARMUP + DAEMON_CHANGES }, (_, i) => {
    const ep = `198.18.255.${240 + (i % 10)}`;
    return text(services.map((s) => (s === last ? { ...s, endpoints: [ep, ...s.endpoints.slice(1)] } : s)));
  });
  try {
    await timeDaemon(services, ns, dir, file, bodies, put, capMs, row);
    // The floor: the same writes, seen by a process that only reads the file.
    put(text(services));
    const floor = spawn(process.execPath, ['-e', FLOOR_WATCHER, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    const flog = logLines(floor, capMs);
    try {
      await flog.waitFor((l) => l.msg === 'no changes', 0);
      row.changeFloorMs = median((await timeChanges(bodies, put, flog)).slice(DAEMON_WARMUP));
    } finally {
      floor.kill('SIGTERM');
      if (floor.exitCode === null) await new Promise((r) => floor.on('exit', r));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function timeDaemon(services: Service[], ns: string, dir: string, file: string, bodies: Buffer[], put: (b: Buffer) => void, capMs: number, row: ControlRow): Promise<void> {
  put(Buffer.from(JSON.stringify(kpbpfConfig(services, { buckets: 65536 }))));
  const t0 = performance.now();
  // ip netns exec execs node: the child's pid is the daemon's.
  const child = spawn('ip', ['netns', 'exec', ns, ...kpbpfArgv(dir, 'run', '-f', file, '--no-metrics')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = logLines(child, capMs);
  const { lines, waitFor } = log;
  try {
    const started = await waitFor((l) => l.msg === 'applied' || l.msg === 'no changes', 0);
    row.fullMs = started - t0;
    const sync = lines.find((l) => l.msg === 'applied')?.ms;
    if (sync) row.syncMs = sync.read + sync.apply;
    if (sync?.readAside) row.syncAsideMs = sync.readAside;
    row.rssBytes = rssOf(child.pid);
    const all = await timeChanges(bodies, put, log);
    row.changeWarmup = all.slice(0, DAEMON_WARMUP);
    const samples = all.slice(DAEMON_WARMUP);
    row.changeSamples = samples;
    row.changeMs = median(samples);
    row.verified = `"applied" log lines: ${samples.length} changes after ${DAEMON_WARMUP} (${row.changeWarmup.map((x) => x.toFixed(1)).join(', ')} ms), ${Math.min(...samples).toFixed(1)}-${Math.max(...samples).toFixed(1)} ms`;
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.on('exit', r));
    await run(kpbpfArgv(dir, 'detach', '--purge'), { ns, allowFail: true, timeoutMs: 60_000 });
  }
}

type Line = { msg?: string; why?: string; ms?: { read: number; apply: number; readAside?: number } };

/** A child's JSON log lines on stderr, and a wait for one (its arrival time). */
function logLines(child: ReturnType<typeof spawn>, capMs: number) {
  const lines: Line[] = [];
  let waiter: { pred: (l: Line) => boolean; from: number; done: (at: number) => void; fail: (e: Error) => void } | undefined;
  child.on('exit', () => waiter?.fail(new Error(`${child.spawnargs.slice(0, 3).join(' ')} exited: ${JSON.stringify(lines.slice(-3))}`)));
  let buf = '';
  child.stderr!.on('data', (d) => {
    const at = performance.now();
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Line);
      buf = buf.slice(i + 1);
    }
    if (waiter && lines.slice(waiter.from).some(waiter.pred)) waiter.done(at);
  });
  const waitFor = (pred: (l: Line) => boolean, from: number): Promise<number> =>
    new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`no such log line within ${capMs} ms: ${JSON.stringify(lines.slice(-3))}`)), capMs);
      const settle = () => (clearTimeout(timer), (waiter = undefined));
      waiter = { pred, from, done: (at) => (settle(), ok(at)), fail: (e) => (settle(), fail(e)) };
      if (lines.slice(from).some(pred)) waiter.done(performance.now());
    });
  return { lines, waitFor };
}

/** Each body written in turn, 100 ms apart, timed from the start of its write to its log line. */
async function timeChanges(bodies: Buffer[], put: (b: Buffer) => void, log: ReturnType<typeof logLines>): Promise<number[]> {
  const samples: number[] = [];
  for (const body of bodies) {
    const from = log.lines.length;
    await new Promise((r) => setTimeout(r, 100)); // changes apart, as a cluster makes them
    const c0 = performance.now();
    put(body);
    samples.push((await log.waitFor((l) => l.msg === 'applied' && l.why === 'file changed', from)) - c0);
  }
  return samples;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** VmRSS of a process, in bytes. */
/** A process's resident memory (VmRSS), bytes. */
export function rssOf(pid: number | undefined): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function runControl(o: { sizes: number[]; capMs: number; bpffs: string; log: (m: string) => void }): Promise<ControlRow[]> {
  const rows: ControlRow[] = [];
  for (const n of o.sizes) {
    const services = makeServices(n);
    const last = services[n - 1];
    for (const tool of CONTROL_TOOLS) {
      const row: ControlRow = { tool, services: n };
      rows.push(row);
      const ns = `kbenchn${process.pid}`;
      await run(['ip', 'netns', 'add', ns]);
      try {
        if (tool === 'kpbpf') await kpbpfRow(services, ns, o.bpffs, o.capMs, row);
        else if (tool === 'kpbpf run') await daemonRow(services, ns, o.bpffs, o.capMs, row);
        else {
          const [full, change, countArgv] =
            tool === 'nft'
              ? [['nft', '-f', '-'], ['nft', '-f', '-'], ['nft', 'list', 'table', 'ip', 'kube-proxy']]
              : [[`${tool}-restore`], [`${tool}-restore`, '--noflush'], [`${tool}-save`, '-t', 'nat']];
          const fullText = tool === 'nft' ? nftRuleset(services) : iptablesRestore(services);
          const chText = tool === 'nft' ? nftEndpointChange(last, last.endpoints[0], NEW_EP) : iptablesEndpointChange(last, last.endpoints[0], NEW_EP);
          const f = await timed(full, ns, fullText, o.capMs);
          row.fullMs = f.ms;
          row.capped = f.capped;
          if (!f.capped) {
            const c = await timed(change, ns, chText, o.capMs);
            row.changeMs = c.ms;
            row.capped = c.capped;
            const listing = await run(countArgv, { ns, timeoutMs: o.capMs, allowFail: true });
            const dnats = (listing.stdout.match(/DNAT|dnat to/g) ?? []).length;
            row.verified = `${countArgv[0]}: ${dnats} DNAT rules${listing.stdout.includes(NEW_EP) ? ', new endpoint present' : ''}`;
          }
        }
      } catch (e) {
        row.error = (e as Error).message;
      } finally {
        await run(['ip', 'netns', 'del', ns], { allowFail: true });
      }
      o.log(`control ${tool} n=${n}: ` + (row.unavailable ?? row.error ?? `full ${row.fullMs?.toFixed(0)} ms${row.capped ? ' (capped)' : ''}, change ${row.changeMs?.toFixed(0)} ms; ${row.verified ?? ''}`));
    }
  }
  return rows;
}
