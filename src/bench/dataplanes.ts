// The data planes compared end to end, each set up in a fresh node namespace and torn down with it.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { run, type RunResult } from './sh.js';
import { ADDR, type Topology } from './topology.js';
import { iptablesRestore, kpbpfConfig, nftRuleset, type Service } from './rulesets.js';

export const REPO = resolve(new URL('../..', import.meta.url).pathname);
export const KPBPF_BIN = join(REPO, 'bin', 'kpbpf.js');
export const KP_OBJ = join(REPO, 'build', 'kp.bpf.o');
export const FWD_OBJ = join(REPO, 'build', 'bench', 'fwd.bpf.o');

export type DataPlaneName = 'kernel-fwd' | 'xdp-fwd' | 'kpbpf' | 'iptables-legacy' | 'iptables-nft' | 'nft';
export const DATAPLANES: DataPlaneName[] = ['kernel-fwd', 'xdp-fwd', 'kpbpf', 'iptables-legacy', 'iptables-nft', 'nft'];

export interface SetupResult {
  /** ms to load the ruleset/config (undefined for the NAT-less baselines) */
  loadMs?: number;
  /** the load hit its time cap: the data plane is not measured */
  capped?: boolean;
  /** the data plane cannot run here, and why */
  unavailable?: string;
  /** per-data-plane facts worth reporting (e.g. XDP mode) */
  note?: string;
}

export interface SetupOptions {
  loadCapMs: number;
  bpffs: string; // a bpffs mount without dots in its path, owned by this run
}

/** Why kpbpf cannot be benchmarked yet, or undefined when it can. */
export function kpbpfMissing(): string | undefined {
  if (!existsSync(KP_OBJ)) return `${KP_OBJ} not built (npm run build:bpf)`;
  if (!existsSync(join(REPO, 'dist', 'cli', 'main.js'))) return 'dist/cli/main.js not built (npm run build:ts)';
  return undefined;
}

function tmpFile(name: string, text: string): { path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kpbench-'));
  const path = join(dir, name);
  writeFileSync(path, text);
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a loader command with a cap; a cap reached is a result, not an error. */
async function timedLoad(argv: string[], ns: string, input: string | undefined, capMs: number): Promise<{ ms: number; capped: boolean; res: RunResult }> {
  const res = await run(argv, { ns, input, timeoutMs: capMs, allowFail: true });
  if (!res.timedOut && res.code !== 0) throw new Error(`${argv[0]} failed: ${res.stderr.trim().slice(0, 400)}`);
  return { ms: res.ms, capped: res.timedOut, res };
}

export function kpbpfArgv(bpffs: string, ...args: string[]): string[] {
  // KPBENCH_NODE_FLAGS: Node flags for the kpbpf processes (--cpu-prof is not allowed in NODE_OPTIONS).
  const flags = process.env.KPBENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  return [process.execPath, ...flags, KPBPF_BIN, '--bpffs', bpffs, ...args];
}

export async function setupDataPlane(dp: DataPlaneName, t: Topology, services: Service[], o: SetupOptions): Promise<SetupResult> {
  const node = t.node;
  const routeVips = () => run(['ip', 'route', 'add', ADDR.vipNet, 'via', ADDR.backend, 'dev', t.nodeOut], { ns: node });
  switch (dp) {
    case 'kernel-fwd':
      // No NAT: the VIP range is simply routed to the backend.
      await routeVips();
      return {};
    case 'xdp-fwd': {
      if (!existsSync(FWD_OBJ)) return { unavailable: `${FWD_OBJ} not built (npm run build:bpf)` };
      await routeVips();
      const dir = join(o.bpffs, `fwd${t.id}`);
      mkdirSync(dir, { recursive: true });
      await run(['bpftool', 'prog', 'load', FWD_OBJ, join(dir, 'prog'), 'type', 'xdp', 'pinmaps', dir]);
      // devmap entries resolve ifindex in the caller's namespace, so update from inside the node.
      const le = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255].map(String);
      await run(['bpftool', 'map', 'update', 'pinned', join(dir, 'kp_tx_ports'), 'key', ...le(t.nodeOutIndex), 'value', ...le(t.nodeOutIndex), ...le(0)], { ns: node });
      const macBytes = (m: string) => m.split(':').map((x) => String(parseInt(x, 16)));
      // struct kp_fwd_cfg: ifindex, dmac, smac, pad
      const cfg = [...le(t.nodeOutIndex), ...macBytes(t.backendMac), ...macBytes(t.nodeOutMac), ...le(0)];
      await run(['bpftool', 'map', 'update', 'pinned', join(dir, 'kp_fwd_cfg'), 'key', '0', '0', '0', '0', 'value', ...cfg]);
      await run(['ip', 'link', 'set', 'dev', t.nodeIn, 'xdpdrv', 'pinned', join(dir, 'prog')], { ns: node });
      return { note: 'native XDP on the node ingress veth: fixed MACs, devmap redirect to the backend veth, no parsing or FIB lookup' };
    }
    case 'kpbpf': {
      const missing = kpbpfMissing();
      if (missing) return { unavailable: missing };
      const dir = join(o.bpffs, `kp${t.id}`);
      mkdirSync(dir, { recursive: true });
      const interfaces = [
        { name: t.nodeIn, mode: 'native' as const, redirect: false },
        { name: t.nodeOut, mode: 'native' as const, redirect: true },
      ];
      const f = tmpFile('kpbpf.json', JSON.stringify(kpbpfConfig(services, { interfaces, buckets: 1 << 20 })));
      try {
        const r = await timedLoad(kpbpfArgv(dir, 'apply', '-f', f.path), node, undefined, o.loadCapMs);
        return { loadMs: r.ms, capped: r.capped, note: 'native XDP on both node veths, redirect to the backend veth; load time includes loading the program' };
      } finally {
        f.done();
      }
    }
    case 'iptables-legacy':
    case 'iptables-nft': {
      const tool = dp === 'iptables-legacy' ? 'iptables-legacy-restore' : 'iptables-nft-restore';
      const r = await timedLoad([tool], node, iptablesRestore(services), o.loadCapMs);
      return { loadMs: r.ms, capped: r.capped };
    }
    case 'nft': {
      const r = await timedLoad(['nft', '-f', '-'], node, nftRuleset(services), o.loadCapMs);
      return { loadMs: r.ms, capped: r.capped };
    }
  }
}

/** Pins of this data plane under the run's bpffs; namespaces go with the topology. */
export function teardownDataPlane(dp: DataPlaneName, t: Topology, o: SetupOptions): void {
  for (const sub of [`fwd${t.id}`, `kp${t.id}`]) rmSync(join(o.bpffs, sub), { recursive: true, force: true });
}
