// UDP load from the client namespace with trafgen (netsniff-ng), measured at the backend.
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KpError } from '../errors.js';
import { run, sleep } from './sh.js';
import { readDelivered, type Topology } from './topology.js';

export type FlowMode = 'new' | 'established';

export const FRAME_LEN = 60; // Ethernet + IPv4 + UDP + 18 bytes payload (64 on a wire with FCS)
export const ESTABLISHED_FLOWS = 1000;

/** trafgen packet config. 'new': random source 198.18.64-127.x and random source port per packet
 * (about 2^30 tuples, so practically every packet is a new flow); 'established': 1000 source
 * ports from one address, cycled. trafgen recomputes the IPv4 and UDP checksums of dynamic fields. */
export function trafgenConfig(t: Pick<Topology, 'clientMac' | 'nodeInMac'>, mode: FlowMode, vip: string, port: number): string {
  const ip =
    mode === 'new'
      ? 'ipv4(sa=198.18.64.0, da=' + vip + ', ttl=64, df, sa[2]=drnd(64, 127), sa[3]=drnd())'
      : 'ipv4(sa=198.18.64.1, da=' + vip + ', ttl=64, df)';
  const sp = mode === 'new' ? 'drnd(1024, 65535)' : `dinc(10000, ${10000 + ESTABLISHED_FLOWS - 1})`;
  return [
    `{ eth(da=${t.nodeInMac}, sa=${t.clientMac}, type=0x0800),`,
    `  ${ip},`,
    `  udp(sp=${sp}, dp=${port}),`,
    '  fill(0x00, 18) }',
    '',
  ].join('\n');
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
  const dir = mkdtempSync(join(tmpdir(), 'kpbench-'));
  const cfg = join(dir, 'tg.cfg');
  writeFileSync(cfg, trafgenConfig(t, mode, vip, port));
  const argv = ['ip', 'netns', 'exec', t.client, 'trafgen', '-o', t.clientIf, '-c', cfg, '-n', String(opts.maxPackets),
    '-P', '1', '--no-sock-mem', '-q'];
  // trafgen forks its senders: run it in its own process group and signal the whole group.
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
    if (child.exitCode !== null) throw new KpError('KP_ERR_NET', `trafgen exited early: ${stderr.trim().slice(-400)}`, { op: 'trafgen' });
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
    rmSync(dir, { recursive: true, force: true });
  }
}
