// UDP load from the client namespace (src/bench/c/udpgen.c over AF_PACKET), measured at the backend.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KpError } from '../errors.js';
import { run, sleep } from './sh.js';
import { readDelivered, type Topology } from './topology.js';

export type FlowMode = 'new' | 'established';

export const FRAME_LEN = 60; // Ethernet + IPv4 + UDP + 18 bytes payload (64 on a wire with FCS)
export const ESTABLISHED_FLOWS = 1000;
const GEN_SRC = fileURLToPath(new URL('../../src/bench/c/udpgen.c', import.meta.url));

let genPath: string | undefined;

/** Compiles the generator once per process (trafgen aborts with EAGAIN when a veth with XDP pushes
 * back, see BENCHMARKS.md; this sender waits instead). */
export async function buildGenerator(): Promise<string> {
  if (genPath) return genPath;
  const dir = mkdtempSync(join(tmpdir(), 'kpbench-gen-'));
  const out = join(dir, 'udpgen');
  await run(['gcc', '-O2', '-Wall', '-o', out, GEN_SRC], { timeoutMs: 60_000 });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  genPath = out;
  return out;
}

export interface LoadResult {
  mode: FlowMode;
  seconds: number;
  offeredPps: number; // what left the client veth
  deliveredPps: number; // what reached the backend, to any endpoint of the bench range
  perEndpoint: Record<string, number>; // packets per endpoint in the measured interval
  lossRatio: number;
}

async function clientTx(t: Topology): Promise<number> {
  const r = await run(['cat', `/sys/class/net/${t.clientIf}/statistics/tx_packets`], { ns: t.client, timeoutMs: 10_000 });
  return Number(r.stdout.trim());
}

/** Send for warmupMs + measureMs, bounded by maxPackets and a hard timeout, and measure the
 * middle interval by counter deltas at both ends. */
export async function measureLoad(
  t: Topology,
  mode: FlowMode,
  vip: string,
  port: number,
  opts: { warmupMs: number; measureMs: number; maxPackets: number },
): Promise<LoadResult> {
  const gen = await buildGenerator();
  const limitS = (opts.warmupMs + opts.measureMs) / 1000 + 5;
  const argv = ['ip', 'netns', 'exec', t.client, 'taskset', '-c', '0', gen, t.clientIf, t.nodeInMac, t.clientMac, vip, String(port),
    mode === 'new' ? 'new' : 'est', String(ESTABLISHED_FLOWS), String(opts.maxPackets), String(limitS)];
  // Its own process group, so one signal reaches everything it started.
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // already gone
    }
  };
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const hard = setTimeout(() => group('SIGKILL'), opts.warmupMs + opts.measureMs + 20_000);
  try {
    await sleep(opts.warmupMs);
    if (child.exitCode !== null) throw new KpError('KP_ERR_NET', `generator exited early: ${stderr.trim().slice(-400)}`, { op: 'udpgen' });
    const d0 = await readDelivered(t);
    const tx0 = await clientTx(t);
    const t0 = performance.now();
    await sleep(opts.measureMs);
    const d1 = await readDelivered(t);
    const tx1 = await clientTx(t);
    const t1 = performance.now();
    const seconds = (t1 - t0) / 1000;
    const perEndpoint: Record<string, number> = {};
    for (const k of Object.keys(d1.perEndpoint)) perEndpoint[k] = d1.perEndpoint[k] - (d0.perEndpoint[k] ?? 0);
    const delivered = d1.total - d0.total;
    const offered = tx1 - tx0;
    return {
      mode,
      seconds,
      offeredPps: offered / seconds,
      deliveredPps: delivered / seconds,
      perEndpoint,
      lossRatio: offered > 0 ? Math.max(0, 1 - delivered / offered) : 0,
    };
  } finally {
    clearTimeout(hard);
    group('SIGINT');
    const killer = setTimeout(() => group('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  }
}
