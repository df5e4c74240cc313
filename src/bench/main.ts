// npm run bench [-- --quick]: end to end, data path, control plane and Maglev, then JSON and BENCHMARKS.md.
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { mountBpffs } from './bpffs.js';
import { DATAPLANES, REPO, type DataPlaneName } from './dataplanes.js';
import { staleNamespaces } from './topology.js';
import { runE2e } from './e2e.js';
import { runControl } from './control.js';
import { runKube } from './kube.js';
import { runMaglev } from './maglev.js';
import { runDatapath } from './datapath.js';
import { chartSvg, renderMarkdown, type Results } from './report.js';
import { run } from './sh.js';

const PARTS = ['e2e', 'datapath', 'control', 'kube', 'maglev'] as const;
type Part = (typeof PARTS)[number];

const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
const ints = (v: string) =>
  list(v).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`not a positive integer: ${x}`);
    return n;
  });
const int = (v: string) => ints(v)[0];

export interface BenchOptions {
  quick?: boolean;
  sizes?: number[];
  controlSizes?: number[];
  /** services served by the fake API server to kpbpf run --kubernetes */
  kubeSizes?: number[];
  /** service counts of the node port run (every service with a node port, as far as the range holds) */
  nodePortSizes?: number[];
  dataplanes?: string[];
  parts?: string[];
  measureMs?: number;
  warmupMs?: number;
  capMs?: number;
  dpVips?: number;
  dpFlows?: number;
  dpIterations?: number;
  /** Katran's balancer object (balancer.bpf.o), built by the user: an anchor in the data-path table */
  katran?: string;
  results?: string;
  markdown?: string;
  render?: string;
}

export async function bench(o: BenchOptions): Promise<Results> {
  const quick = Boolean(o.quick);
  const parts = (o.parts ?? [...PARTS]) as Part[];
  const log: string[] = [];
  const say = (m: string) => {
    log.push(m);
    process.stderr.write(`${m}\n`);
  };
  for (const ns of staleNamespaces()) await run(['ip', 'netns', 'del', ns], { allowFail: true });
  const sizes = o.sizes ?? (quick ? [100, 1000] : [100, 1000, 10000]);
  const controlSizes = o.controlSizes ?? (quick ? [1000] : [1000, 10000]);
  const nodePortSizes = o.nodePortSizes ?? [1000];
  const kubeSizes = o.kubeSizes ?? (quick ? [1000] : [1000, 10000]);
  const capMs = o.capMs ?? (quick ? 60_000 : 600_000);
  const opts = {
    sizes, controlSizes, nodePortSizes, kubeSizes, capMs,
    dataplanes: (o.dataplanes ?? DATAPLANES) as DataPlaneName[],
    warmupMs: o.warmupMs ?? (quick ? 500 : 1000),
    measureMs: o.measureMs ?? (quick ? 1500 : 4000),
    maxPackets: 50_000_000,
    dpVips: o.dpVips ?? (quick ? 1000 : 10000),
    dpFlows: o.dpFlows ?? (quick ? 100_000 : 1_000_000),
    dpIterations: o.dpIterations ?? (quick ? 2000 : 10000),
  };
  const cpu = cpus();
  const res: Results = {
    machine: {
      date: new Date().toISOString(),
      cpu: cpu[0]?.model ?? 'unknown',
      cpus: cpu.length,
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      mode: o.sizes || o.parts ? 'custom' : quick ? 'quick' : 'full',
    },
    options: opts,
    e2e: [],
    e2eNodePort: [],
    control: [],
    kube: [],
    maglev: [],
    log,
  };
  const fs = await mountBpffs();
  try {
    if (parts.includes('maglev')) {
      res.maglev = runMaglev({
        sizes: quick ? [1021, 16381, 65537] : [1021, 4093, 16381, 65537],
        backends: quick ? [10, 100, 1000] : [10, 100, 500, 1000],
        reps: quick ? 3 : 5,
        log: say,
      });
    }
    if (parts.includes('datapath')) {
      try {
        if (o.katran && !existsSync(o.katran)) throw new Error(`--katran ${o.katran}: no such file`);
        res.datapath = await runDatapath({ vips: opts.dpVips, flows: opts.dpFlows, iterations: opts.dpIterations, bpffs: fs.dir, katran: o.katran, log: say });
      } catch (e) {
        res.datapathError = (e as Error).message.split('\n')[0].slice(0, 300);
        say(`datapath: error: ${res.datapathError}`);
      }
    }
    if (parts.includes('control')) res.control = await runControl({ sizes: controlSizes, capMs, bpffs: fs.dir, log: say });
    if (parts.includes('kube')) res.kube = await runKube(kubeSizes, { bpffs: fs.dir, say });
    if (parts.includes('e2e')) {
      res.e2e = await runE2e({ ...opts, modes: ['new', 'established'], loadCapMs: capMs, bpffs: fs.dir, log: say });
      // The same traffic through a node port, beside kube-proxy's NodePort rules (the forwarding
      // baselines do no NAT, so they have no node port to measure).
      const translating = opts.dataplanes.filter((d) => d !== 'kernel-fwd' && d !== 'xdp-fwd');
      res.e2eNodePort = await runE2e({ ...opts, sizes: nodePortSizes, dataplanes: translating, via: 'nodeport', modes: ['established', 'new'], loadCapMs: capMs, bpffs: fs.dir, log: say });
    }
  } finally {
    for (const ns of staleNamespaces()) await run(['ip', 'netns', 'del', ns], { allowFail: true });
    await fs.release();
  }
  const stamp = res.machine.date.replace(/[:.]/g, '-');
  const jsonPath = join(o.results ?? join(REPO, 'bench-results'), `${stamp}.json`);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(res, null, 2) + '\n');
  say(`wrote ${jsonPath}`);
  writeReport(res, o.markdown, say);
  return res;
}

/** BENCHMARKS.md and its chart from one run's results. */
export function writeReport(res: Results, markdown: string | undefined, say: (s: string) => void): void {
  const md = markdown ?? join(REPO, 'BENCHMARKS.md');
  const svg = md.replace(/\.md$/, '') + '-chart.svg'; // beside the report (bench-results/ is not committed)
  mkdirSync(dirname(svg), { recursive: true });
  writeFileSync(svg, chartSvg(res.e2e));
  writeFileSync(md, renderMarkdown(res, relative(dirname(md), svg)));
  say(`wrote ${md} and ${svg}`);
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('bench')
    .description('kpbpf benchmarks against kube-proxy iptables/nftables rulesets and the XDP ceiling (needs root)')
    .option('--quick', 'smaller sizes and shorter runs (a few minutes)')
    .option('--sizes <list>', 'services for the end-to-end runs, e.g. 100,1000,10000', ints)
    .option('--control-sizes <list>', 'services for the control-plane timings', ints)
    .option('--kube-sizes <list>', 'services the fake API server holds for kpbpf run --kubernetes', ints)
    .option('--dataplanes <list>', `subset of ${DATAPLANES.join(',')}`, list)
    .option('--parts <list>', `subset of ${PARTS.join(',')}`, list)
    .option('--measure-ms <n>', 'measured interval per end-to-end run', int)
    .option('--warmup-ms <n>', 'traffic before the measured interval', int)
    .option('--cap-ms <n>', 'time cap of one ruleset/config load', int)
    .option('--dp-vips <n>', 'VIPs configured for the data-path runs', int)
    .option('--dp-flows <n>', 'flows preloaded for the data-path runs', int)
    .option('--dp-iterations <n>', 'packets per data-path measurement', int)
    .option('--katran <obj>', "Katran's XDP balancer object, built from its public repository (README: Benchmarks), measured beside kpbpf")
    .option('--results <dir>', 'where the JSON goes (default bench-results/)')
    .option('--markdown <file>', 'where the report goes (default BENCHMARKS.md)')
    .option('--render <json>', 'only regenerate the report from an earlier run\'s JSON')
    .addHelpText('after', '\nExamples:\n  npm run bench -- --quick\n  npm run bench -- --parts e2e --sizes 100 --dataplanes kpbpf,nft\n  npm run bench -- --parts datapath --katran /tmp/katran/balancer.bpf.o\n');
  program.parse(argv, { from: 'user' });
  const o = program.opts<BenchOptions>();
  for (const p of o.parts ?? []) if (!(PARTS as readonly string[]).includes(p)) throw new InvalidArgumentError(`unknown part ${p}`);
  for (const d of o.dataplanes ?? []) if (!(DATAPLANES as string[]).includes(d)) throw new InvalidArgumentError(`unknown data plane ${d}`);
  if (o.render) {
    writeReport(JSON.parse(readFileSync(o.render, 'utf8')) as Results, o.markdown, (m) => process.stdout.write(`${m}\n`));
    return 0;
  }
  await bench(o);
  return 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (c) => (process.exitCode = c),
    (e) => {
      process.stderr.write(`bench: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
