// A tiny run of the whole harness: proves it works end to end, without gating on figures.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { bench } from '../../src/bench/main.js';
import { DATAPLANES } from '../../src/bench/dataplanes.js';
import { DAEMON_CHANGES } from '../../src/bench/control.js';
import { KUBE_CHANGES } from '../../src/bench/kube.js';
import { skipUnlessCi } from '../helpers/ci.js';

const root = process.getuid?.() === 0;
const missing = ['gcc', 'nft', 'ethtool', 'bpftool', 'iptables-legacy-restore', 'iptables-nft-restore'].filter(
  (c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0,
);
const skip = skipUnlessCi(!root ? 'needs root (network namespaces, XDP, bpffs)' : missing.length ? `missing tools: ${missing.join(', ')}` : false);

t.test('bench: tiny quick run', { skip, timeout: 280_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbench-smoke-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const md = join(dir, 'BENCHMARKS.md');
  const res = await bench({
    quick: true,
    sizes: [10],
    controlSizes: [10],
    nodePortSizes: [10],
    kubeSizes: [10],
    warmupMs: 200,
    measureMs: 300,
    capMs: 60_000,
    dpVips: 10,
    dpFlows: 1000,
    dpIterations: 50,
    results: join(dir, 'results'),
    markdown: md,
  });
  t.equal(res.e2e.length, DATAPLANES.length, 'one e2e row per data plane');
  const np = res.e2eNodePort ?? [];
  t.same(np.map((r) => r.dataplane).sort(), ['iptables-legacy', 'iptables-nft', 'kpbpf', 'nft'], 'a node port row per translating data plane');
  for (const row of np.filter((r) => ['iptables-legacy', 'nft', 'kpbpf'].includes(r.dataplane))) {
    t.ok(row.results.length === 2 && row.results.every((x) => x.deliveredPps > 0), `${row.dataplane} node port: traffic delivered (${row.error ?? row.unavailable ?? 'ok'})`);
  }
  for (const row of res.e2e) {
    t.notOk(row.error, `${row.dataplane}: no error`);
    if (row.unavailable) t.comment(`${row.dataplane} unavailable: ${row.unavailable}`);
    else t.same(row.results.map((r) => r.mode), ['new', 'established'], `${row.dataplane}: both flow modes measured`);
  }
  const kernel = res.e2e.find((r) => r.dataplane === 'kernel-fwd')!;
  t.ok(kernel.results.every((r) => r.deliveredPps > 0), 'kernel forwarding delivered packets to the backend');
  for (const row of res.e2e.filter((r) => ['iptables-legacy', 'nft', 'kpbpf'].includes(r.dataplane) && r.results.length)) {
    const eps = Object.entries(row.results[0].perEndpoint).filter(([k, v]) => k !== 'other' && v > 0);
    t.equal(eps.length, 8, `${row.dataplane}: DNAT reached all 8 endpoints`);
  }
  t.equal(res.control.length, 5, 'control rows for kpbpf, kpbpf run, iptables-legacy, iptables-nft, nft');
  for (const c of res.control.filter((c) => !c.unavailable)) t.ok(c.fullMs! > 0 && c.changeMs! > 0, `${c.tool}: timed`);
  const daemon = res.control.find((c) => c.tool === 'kpbpf run');
  t.ok(daemon?.unavailable || (daemon!.syncMs! > 0 && daemon!.rssBytes! > 10 * 2 ** 20 && daemon!.changeSamples!.length === DAEMON_CHANGES), `kpbpf run: its own sync time, resident memory and ${DAEMON_CHANGES} changes`);
  t.ok(daemon?.unavailable || daemon!.changeFloorMs! > 0, 'kpbpf run: the floor of a change (a process that only reads the file) measured in the same run');
  const kube = res.kube?.[0];
  t.ok(kube && (kube.unavailable || (kube.startMs! > 0 && kube.changeEventMs!.length === KUBE_CHANGES && kube.changeFloorMs!.length === KUBE_CHANGES && kube.relistApplied === 0)), `kpbpf run --kubernetes: start, ${KUBE_CHANGES} changes with their floor, a relist that applies nothing (${kube?.error ?? 'ok'})`);
  t.match(readFileSync(md, 'utf8'), /## Kubernetes API source/, 'the report has the Kubernetes section');
  t.ok(res.maglev.length > 0, 'maglev rows');
  t.ok(res.datapath && res.datapath.rows.length === 27 && res.datapath.rows.every((r) => r.nsPerPacket > 0), 'data path rows (baselines, kpbpf paths with node port, masquerade, IPv6, NAT46 and NAT64, insert floors), each verified');
  t.same(res.datapath?.rows.filter((r) => /^kpbpf NAT(46|64)/.test(r.path)).map((r) => [r.path, r.anchor]), [
    ['kpbpf NAT46 established, 1 hot flow', 'kpbpf established, 1 hot flow'],
    ['kpbpf NAT46 reply, 1 hot flow', 'kpbpf reply SNAT, 1 hot flow'],
    ['kpbpf NAT64 established, 1 hot flow', 'kpbpf IPv6 established, 1 hot flow'],
    ['kpbpf NAT64 reply, 1 hot flow', 'kpbpf IPv6 reply SNAT, 1 hot flow'],
    ['kpbpf NAT46 first packet, empty table', 'kpbpf first packet, empty table'],
    ['kpbpf NAT64 first packet, empty table', 'kpbpf IPv6 first packet, empty table'],
  ], 'the 4<->6 rows, each compared with its same-family twin');
  t.same(res.datapath?.rows.filter((r) => r.path.startsWith('kpbpf IPv6')).map((r) => r.anchor), ['kpbpf established, 1 hot flow', 'kpbpf reply SNAT, 1 hot flow', 'kpbpf first packet, empty table'], 'the IPv6 rows, each compared with its IPv4 twin');
  t.ok(res.datapath?.rows.some((r) => r.path.startsWith('kpbpf established, 1 hot flow') && r.verified.includes('XDP_REDIRECT')), 'established DNAT measured with its forwarding decision');
  const json = readdirSync(join(dir, 'results')).filter((f) => f.endsWith('.json'));
  t.equal(json.length, 1, 'JSON written');
  t.same(JSON.parse(readFileSync(join(dir, 'results', json[0]), 'utf8')).machine.kernel, res.machine.kernel);
  const text = readFileSync(md, 'utf8');
  for (const h of ['## Machine', '## End to end', '## Control plane', '## Maglev']) t.match(text, h);
  t.match(readFileSync(join(dir, 'BENCHMARKS-chart.svg'), 'utf8'), /<svg[\s\S]*polyline/);
  t.same(readdirSync('/run/netns').filter((n) => n.startsWith(`kbench`) && n.endsWith(String(process.pid))), [], 'namespaces removed');
});
