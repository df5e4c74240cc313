// BENCHMARKS.md and its SVG chart from one run's results.
import type { E2eRow } from './e2e.js';
import { DAEMON_CHANGES, DAEMON_WARMUP, type ControlRow } from './control.js';
import { KUBE_CHANGES, quantile, type KubeRow } from './kube.js';
import type { MaglevRow } from './maglev.js';
import type { DatapathResult } from './datapath.js';
import type { DataPlaneName } from './dataplanes.js';

export interface Machine {
  date: string;
  cpu: string;
  cpus: number;
  memGiB: number;
  kernel: string;
  node: string;
  mode: 'quick' | 'full' | 'custom';
}

export interface Results {
  machine: Machine;
  options: Record<string, unknown>;
  e2e: E2eRow[];
  /** the same traffic through the measured service's node port (older results have none) */
  e2eNodePort?: E2eRow[];
  control: ControlRow[];
  /** kpbpf run --kubernetes against the fake API server (older results have none) */
  kube?: KubeRow[];
  maglev: MaglevRow[];
  datapath?: DatapathResult;
  datapathError?: string;
  log: string[];
}

const COLORS: Record<DataPlaneName, string> = {
  'kernel-fwd': '#888888',
  'xdp-fwd': '#000000',
  kpbpf: '#d62728',
  'iptables-legacy': '#1f77b4',
  'iptables-nft': '#2ca02c',
  nft: '#ff7f0e',
};

const fmtInt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const fmtRatio = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));
const kpps = (x: number) => `${(x / 1000).toFixed(0)}k`;

export function pps(rows: E2eRow[], dp: DataPlaneName, n: number, mode: 'new' | 'established'): number | undefined {
  return rows.find((r) => r.dataplane === dp && r.services === n)?.results.find((x) => x.mode === mode)?.deliveredPps;
}

function cellStatus(r: E2eRow | undefined): string {
  if (!r) return 'not run';
  if (r.unavailable) return 'unavailable';
  if (r.capped) return 'load capped';
  if (r.error) return 'error';
  return '–';
}

/** forwarded packets/s against number of services, one line per data plane (new flows solid, established dashed). */
export function chartSvg(rows: E2eRow[]): string {
  const W = 720, H = 420, L = 80, R = 170, T = 30, B = 50;
  const sizes = [...new Set(rows.map((r) => r.services))].sort((a, b) => a - b);
  const dps = [...new Set(rows.map((r) => r.dataplane))];
  const all = rows.flatMap((r) => r.results.map((x) => x.deliveredPps));
  const maxY = Math.max(1, ...all) * 1.1;
  const lx = (n: number) => (sizes.length < 2 ? L + (W - L - R) / 2 : L + ((Math.log10(n) - Math.log10(sizes[0])) / (Math.log10(sizes.at(-1)!) - Math.log10(sizes[0]))) * (W - L - R));
  const ly = (v: number) => T + (1 - v / maxY) * (H - T - B);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">Forwarded packets/s vs services (8 endpoints each); solid: new flow per packet, dashed: 1k established flows</text>`];
  for (let i = 0; i <= 5; i++) {
    const v = (maxY / 5) * i;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${ly(v)}" y2="${ly(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${ly(v) + 4}" text-anchor="end">${kpps(v)}</text>`);
  }
  for (const n of sizes) out.push(`<text x="${lx(n)}" y="${H - B + 18}" text-anchor="middle">${n.toLocaleString('en-US')}</text>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">services (log scale)</text>`);
  dps.forEach((dp, i) => {
    for (const mode of ['new', 'established'] as const) {
      const pts = sizes.map((n) => [n, pps(rows, dp, n, mode)] as const).filter((p): p is readonly [number, number] => p[1] !== undefined);
      if (!pts.length) continue;
      const dash = mode === 'established' ? ' stroke-dasharray="6 4"' : '';
      out.push(`<polyline fill="none" stroke="${COLORS[dp]}" stroke-width="2"${dash} points="${pts.map(([n, v]) => `${lx(n).toFixed(1)},${ly(v).toFixed(1)}`).join(' ')}"/>`);
      for (const [n, v] of pts) out.push(`<circle cx="${lx(n).toFixed(1)}" cy="${ly(v).toFixed(1)}" r="3" fill="${COLORS[dp]}"/>`);
    }
    out.push(`<line x1="${W - R + 10}" x2="${W - R + 35}" y1="${T + 20 + i * 20}" y2="${T + 20 + i * 20}" stroke="${COLORS[dp]}" stroke-width="2"/>`,
      `<text x="${W - R + 40}" y="${T + 24 + i * 20}">${dp}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}

function e2eTables(rows: E2eRow[]): string[] {
  const sizes = [...new Set(rows.map((r) => r.services))].sort((a, b) => a - b);
  const dps = [...new Set(rows.map((r) => r.dataplane))];
  const out: string[] = [];
  for (const mode of ['new', 'established'] as const) {
    out.push(`### ${mode === 'new' ? 'Every packet a new flow' : '1,000 established flows'}`, '',
      '| data plane | services | delivered pps | offered pps | × kernel-fwd | × xdp-fwd | × kpbpf | load ms | note |', '|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const n of sizes) {
      for (const dp of dps) {
        const r = rows.find((x) => x.dataplane === dp && x.services === n);
        const res = r?.results.find((x) => x.mode === mode);
        const v = res?.deliveredPps;
        const ratio = (base: DataPlaneName) => {
          const b = pps(rows, base, n, mode);
          return v !== undefined && b ? fmtRatio(v / b) : '–';
        };
        const note = r?.unavailable ?? (r?.capped ? 'load hit the time cap: not measured' : r?.error ? `error: ${r.error.slice(0, 80)}` : r?.note ?? '');
        out.push(`| ${dp} | ${n.toLocaleString('en-US')} | ${v === undefined ? cellStatus(r) : fmtInt(v)} | ${fmtInt(res?.offeredPps)} | ${ratio('kernel-fwd')} | ${ratio('xdp-fwd')} | ${ratio('kpbpf')} | ${fmtInt(r?.loadMs)} | ${note} |`);
      }
    }
    out.push('');
  }
  const spread = rows.flatMap((r) => r.results.filter((x) => x.mode === 'new').map((x) => ({ r, x })));
  if (spread.length) {
    out.push('Spread over the 8 endpoints of the measured service (new flows; min/max share of its packets):', '',
      '| data plane | services | min share | max share |', '|---|---:|---:|---:|');
    for (const { r, x } of spread) {
      const vals = Object.entries(x.perEndpoint).filter(([k]) => k !== 'other').map(([, v]) => v);
      const tot = vals.reduce((a, b) => a + b, 0);
      if (!tot) continue;
      out.push(`| ${r.dataplane} | ${r.services.toLocaleString('en-US')} | ${(Math.min(...vals) / tot).toFixed(3)} | ${(Math.max(...vals) / tot).toFixed(3)} |`);
    }
    out.push('');
  }
  return out;
}

/** The node port run: each data plane beside kpbpf's node port and the cluster IP run's xdp-fwd ceiling. */
function nodePortTable(res: Results): string[] {
  const rows = res.e2eNodePort ?? [];
  if (!rows.length) return [];
  const out = ['### Through a node port', '',
    'Every service that fits the node port range (30000-32767) has a node port; traffic goes to the node\'s address on the measured service\'s. ' +
      'kube-proxy masquerades all of it (externalTrafficPolicy Cluster), kpbpf every connection to a backend not on this node (all of them here).', '',
    '| data plane | services | mode | delivered pps | offered pps | × kpbpf | × xdp-fwd (cluster IP run) | × its own cluster IP | load ms | note |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---|'];
  for (const r of rows) {
    for (const mode of ['new', 'established'] as const) {
      const v = r.results.find((x) => x.mode === mode);
      const kp = pps(rows, 'kpbpf', r.services, mode);
      const ceil = pps(res.e2e, 'xdp-fwd', r.services, mode);
      const own = pps(res.e2e, r.dataplane, r.services, mode);
      const ratio = (b?: number) => (v && b ? fmtRatio(v.deliveredPps / b) : '–');
      const note = r.unavailable ?? (r.capped ? 'load hit the time cap: not measured' : r.error ? `error: ${r.error.slice(0, 80)}` : '');
      out.push(`| ${r.dataplane} | ${r.services.toLocaleString('en-US')} | ${mode} | ${v ? fmtInt(v.deliveredPps) : cellStatus(r)} | ${fmtInt(v?.offeredPps)} | ${ratio(kp)} | ${ratio(ceil)} | ${ratio(own)} | ${fmtInt(r.loadMs)} | ${note} |`);
    }
  }
  out.push('');
  return out;
}

function reading(res: Results): string[] {
  const out: string[] = [];
  const sizes = [...new Set(res.e2e.map((r) => r.services))].sort((a, b) => a - b);
  for (const mode of ['new', 'established'] as const) {
    for (const n of sizes) {
      const kp = pps(res.e2e, 'kpbpf', n, mode);
      if (kp === undefined) continue;
      const cmp = (['iptables-legacy', 'iptables-nft', 'nft', 'kernel-fwd', 'xdp-fwd'] as DataPlaneName[])
        .map((dp) => [dp, pps(res.e2e, dp, n, mode)] as const)
        .filter((p): p is readonly [DataPlaneName, number] => p[1] !== undefined)
        .map(([dp, v]) => `${fmtRatio(kp / v)}× ${dp}`);
      if (cmp.length) out.push(`- ${mode === 'new' ? 'New flows' : 'Established flows'}, ${n.toLocaleString('en-US')} services: kpbpf forwards ${cmp.join(', ')}.`);
    }
  }
  for (const n of [...new Set((res.e2eNodePort ?? []).map((r) => r.services))]) {
    for (const mode of ['new', 'established'] as const) {
      const kp = pps(res.e2eNodePort!, 'kpbpf', n, mode);
      if (kp === undefined) continue;
      const cmp = (['iptables-legacy', 'iptables-nft', 'nft'] as DataPlaneName[])
        .map((dp) => [dp, pps(res.e2eNodePort!, dp, n, mode)] as const)
        .filter((p): p is readonly [DataPlaneName, number] => p[1] !== undefined)
        .map(([dp, v]) => `${fmtRatio(kp / v)}× ${dp}`);
      if (cmp.length) out.push(`- Node port, ${mode === 'new' ? 'new flows' : 'established flows'}, ${n.toLocaleString('en-US')} services: kpbpf forwards ${cmp.join(', ')}.`);
    }
  }
  for (const r of res.e2e.filter((x) => x.capped)) out.push(`- ${r.dataplane} could not load ${r.services.toLocaleString('en-US')} services within the cap; it was not measured at that size.`);
  const ctl = res.control.filter((c) => c.fullMs !== undefined);
  for (const n of [...new Set(ctl.map((c) => c.services))]) {
    const kp = ctl.find((c) => c.tool === 'kpbpf' && c.services === n);
    if (!kp?.fullMs) continue;
    const others = ctl.filter((c) => c.tool !== 'kpbpf' && c.tool !== 'kpbpf run' && c.services === n && c.changeMs !== undefined);
    const daemon = ctl.find((c) => c.tool === 'kpbpf run' && c.services === n && c.changeMs !== undefined);
    const ms = (v?: number) => (v === undefined ? '?' : v < 10 ? v.toFixed(1) : fmtInt(v));
    out.push(`- Control plane, ${n.toLocaleString('en-US')} services: kpbpf full apply ${fmtInt(kp.fullMs)} ms${daemon?.syncMs ? ` (${fmtInt(daemon.syncMs)} ms within kpbpf run)` : ''} vs ${others.map((o) => `${o.tool} ${fmtInt(o.fullMs)} ms`).join(', ')}; ` +
      `one-endpoint change ${fmtInt(kp.changeMs)} ms${daemon ? ` (${ms(daemon.changeMs)} ms through kpbpf run, file write to maps${daemon.changeFloorMs !== undefined ? `, against ${ms(daemon.changeFloorMs)} ms for a process that only reads the file` : ''})` : ''} vs ${others.map((o) => `${o.tool} ${ms(o.changeMs)} ms`).join(', ')}` +
      `${daemon?.rssBytes ? `; kpbpf run resident ${(daemon.rssBytes / 2 ** 20).toFixed(0)} MiB` : ''}.`);
  }
  for (const k of (res.kube ?? []).filter((x) => x.startMs !== undefined)) out.push(kubeReading(k));
  for (const r of res.datapath?.rows.filter((x) => x.anchor) ?? []) {
    const a = res.datapath!.rows.find((x) => x.path === r.anchor);
    if (a) out.push(`- Per packet, ${r.path}: ${fmtRatio(r.nsPerPacket / a.nsPerPacket)}× ${a.path} (${r.nsPerPacket.toFixed(0)} vs ${a.nsPerPacket.toFixed(0)} ns).`);
  }
  // What a new connection's inserts alone cost, beside kpbpf's and Katran's whole first packet.
  for (const table of ['empty table', `${res.datapath?.flows.toLocaleString('en-US')} flows`]) {
    const r = (path: string) => res.datapath?.rows.find((x) => x.path === path)?.nsPerPacket;
    const [kp, kt, one, two] = [r(`kpbpf first packet, ${table}`), r(`katran new flow, ${table === 'empty table' ? 'empty LRU' : table}`),
      r(`floor: one LRU insert, ${table}`), r(`floor: two LRU inserts, ${table}`)];
    if (kp === undefined || one === undefined || two === undefined) continue;
    out.push(`- New connection, ${table}: one LRU insert alone (with the parser) costs ${one.toFixed(0)} ns and two ${two.toFixed(0)} ns; ` +
      `kpbpf's first packet (two inserts) ${kp.toFixed(0)} ns${kt !== undefined ? `, Katran's new flow (one insert) ${kt.toFixed(0)} ns` : ''}.`);
  }
  out.push('',
    'Why: iptables evaluates KUBE-SERVICES rule by rule for the first packet of a flow, so its cost grows with the number of services, ' +
    'and every new flow also pays for a conntrack entry and NAT setup; nftables replaces the rule walk with one verdict-map lookup but keeps conntrack. ' +
    'kpbpf works in XDP before an skb exists, so neither the number of services nor the kernel\'s conntrack is on its path. ' +
    'A packet of a known connection makes one hash lookup (its forward record, or for a packet to a client port its reply entry) and no VIP ' +
    'lookup; the next hop comes from an array per backend (replies: from the connection record), the clock is the inlined jiffies, and the ' +
    'forward and reply fast paths run inline, so an established packet makes two calls (the connection lookup and the redirect; array ' +
    'lookups and the clock are inlined by the verifier). On this machine every call costs a return thunk (spec_rstack_overflow: Safe RET), which is why calls are what ' +
    'the hot paths are counted in. Where it loses: a new connection costs two inserts into the shared connection table (its forward record ' +
    'and the reply entry the collision check claims atomically; the floor rows above give what one and two inserts alone cost in this run), ' +
    'where Katran makes one: it never sees replies (its backends answer clients directly), kpbpf translates them and ' +
    'finds them with one lookup. With a million connections its table holds two elements per connection (64-byte values). ' +
    'For established flows kpbpf makes no insert; on veth an XDP_REDIRECT frame still ' +
    'becomes an skb at the backend veth, so XDP saves less than on a NIC. ' +
    'Control plane: `kpbpf apply` is a fresh Node process each time (start-up, reading the running state back from the maps, validating and ' +
    'diffing the whole config, every Maglev table copied into one shared mapped store). ' + controlComparison(res) +
    '`kpbpf run` has no start-up per change: it keeps what it applied last, compares only the VIPs whose text ' +
    'in the file changed and publishes a table with one store into the shared Maglev store, so its ' +
    'one-endpoint change is the time to read and check the whole file plus one VIP\'s work.');
  return out;
}

/** How kpbpf apply's full load and one-endpoint change rank against the others, from this run's rows. */
export function controlComparison(res: Pick<Results, 'control'>): string {
  const rows = res.control.filter((c) => c.fullMs !== undefined);
  const sentences: string[] = [];
  for (const n of [...new Set(rows.map((c) => c.services))]) {
    const kp = rows.find((c) => c.tool === 'kpbpf' && c.services === n);
    const others = rows.filter((c) => c.tool !== 'kpbpf' && c.tool !== 'kpbpf run' && c.services === n);
    if (!kp || !others.length) continue;
    const names = (xs: ControlRow[]) => xs.map((o) => o.tool).join(' and ');
    const beats = others.filter((o) => o.fullMs! > kp.fullMs!);
    const loses = others.filter((o) => o.fullMs! <= kp.fullMs!);
    const full = [beats.length ? `faster than ${names(beats)}` : '', loses.length ? `slower than ${names(loses)}` : ''].filter(Boolean).join(' and ');
    let change = '';
    const withChange = others.filter((o) => o.changeMs !== undefined);
    if (kp.changeMs !== undefined && withChange.length) {
      const quicker = withChange.filter((o) => o.changeMs! < kp.changeMs!);
      change = quicker.length
        ? `; a one-endpoint change (${fmtInt(kp.changeMs)} ms) took longer than ${quicker.map((o) => `${o.tool}'s ${fmtInt(o.changeMs)} ms`).join(' and ')}`
        : `; a one-endpoint change (${fmtInt(kp.changeMs)} ms) was the quickest`;
    }
    sentences.push(`At ${n.toLocaleString('en-US')} services in this run its full load (${fmtInt(kp.fullMs)} ms) was ${full}${change}.`);
  }
  return sentences.length ? sentences.join(' ') + ' ' : '';
}

export function renderMarkdown(res: Results, chartFile: string): string {
  const m = res.machine;
  const out = ['# kpbpf benchmarks', '',
    `Generated by \`npm run bench${m.mode === 'quick' ? ' -- --quick' : ''}\` on ${m.date}. Every figure below comes from that one run; ` +
    'rerun to regenerate (JSON in `bench-results/`). The machine is shared and noisy: read ratios between data planes measured in the same run, not absolute figures.', '',
    '## Machine', '', `- CPU: ${m.cpu} × ${m.cpus}`, `- memory: ${m.memGiB} GiB`, `- kernel: ${m.kernel}`, `- node: ${m.node}`, `- mode: ${m.mode}`, '',
    ...kubeTargets(res.kube ?? []),
    '## Reading', '', ...reading(res), '',
    '## End to end (forwarded packets/s)', '',
    'Topology: client → node → backend namespaces over veth pairs, addresses from 198.18.0.0/15. The client sends 60-byte UDP frames with ' +
    '`src/bench/c/udpgen.c` (AF_PACKET, pinned to CPU 0); the node\'s ingress veth polls in a threaded NAPI pinned to CPU 1, so the data plane ' +
    'under test gets its own core. Traffic goes to the last-listed service; the backend counts (and drops) what arrives per endpoint in an ' +
    'nft ingress chain. trafgen was tried first: it aborts with EAGAIN ("Flushing TX_RING failed") when a veth with XDP pushes back, so the ' +
    'harness uses its own sender, which waits on backpressure (offered ≈ delivered means the data plane, not the sender, set the pace).', '',
    `![forwarded packets/s vs services](${chartFile})`, '', ...e2eTables(res.e2e), ...nodePortTable(res)];
  if (res.datapath) out.push(...datapathSection(res.datapath));
  else if (res.datapathError) out.push('## Data path per packet (BPF_PROG_TEST_RUN)', '', `Not measured in this run: ${res.datapathError}`, '');
  out.push('## Control plane', '', '| tool | services | full load ms | one-endpoint change ms | kpbpf run: own full sync ms | kpbpf run: resident MiB | verified | kpbpf map bytes (memlock) | note |', '|---|---:|---:|---:|---:|---:|---|---:|---|');
  const fmtMs = (v?: number) => (v === undefined ? '' : v < 10 ? v.toFixed(1) : fmtInt(v));
  for (const c of res.control) {
    const floor = c.changeFloorMs !== undefined ? `; a process that only reads the file: ${fmtMs(c.changeFloorMs)} ms` : '';
    const aside = c.syncAsideMs ? ` (+${fmtInt(c.syncAsideMs)} read aside)` : '';
    out.push(`| ${c.tool} | ${c.services.toLocaleString('en-US')} | ${fmtInt(c.fullMs)}${c.capped ? ' (cap reached)' : ''} | ${fmtMs(c.changeMs)} | ${fmtInt(c.syncMs)}${aside} | ${c.rssBytes ? (c.rssBytes / 2 ** 20).toFixed(0) : ''} | ${c.verified ?? ''}${floor} | ${fmtInt(c.mapBytes)} | ${c.unavailable ?? c.error ?? ''} |`);
  }
  out.push('', 'kpbpf times are whole `kpbpf apply -f` invocations (Node start-up included) after the program was loaded by an empty apply; ' +
    'kpbpf run times are the long-running mode: from its start to its first "applied" log line (Node start-up and program load included), its own time for that full sync (waiting for the file the helper thread read and checked while the program loaded, diff, maps; "read aside" is that read and check), ' +
    `then the median of ${DAEMON_CHANGES} one-endpoint changes (after ${DAEMON_WARMUP} not counted, listed in "verified": the first ones after a full sync run code the JIT has not optimized yet) from the start of the file's write (its bytes made before) to the change's "applied" line as the log arrives, and the same writes seen by a process that only reads the file and logs a line (the floor); its resident memory after the full sync; ` +
    'iptables times are `iptables-*-restore` of the whole nat table, then `--noflush` of the changed chains; nft times are `nft -f` of the table, then one transaction.', '');
  out.push(...kubeSection(res.kube ?? []));
  out.push('## Maglev', '', '| table size | backends | compile ms | balance (max/mean) | moved on remove | moved on add | ideal 1/N |', '|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of res.maglev) {
    out.push(`| ${r.size} | ${r.backends} | ${r.compileMs.toFixed(2)} | ${r.balance.toFixed(3)} | ${r.movedOnRemove.toFixed(4)} | ${r.movedOnAdd.toFixed(4)} | ${r.ideal.toFixed(4)} |`);
  }
  out.push('');
  return out.join('\n');
}

function datapathSection(d: DatapathResult): string[] {
  const out = ['## Data path per packet (BPF_PROG_TEST_RUN)', '', d.method, '',
    '| path | ns/packet | × pass.bpf.o | × parse.bpf.o | × anchor | iterations | verified by counters |', '|---|---:|---:|---:|---:|---:|---|'];
  const row = (name: string) => d.rows.find((r) => r.path === name);
  const p = row('pass.bpf.o')?.nsPerPacket;
  const q = row('parse.bpf.o')?.nsPerPacket;
  for (const r of d.rows) {
    const a = r.anchor ? row(r.anchor) : undefined;
    const vs = a ? `${fmtRatio(r.nsPerPacket / a.nsPerPacket)} ${a.path}` : '–';
    out.push(`| ${r.path} | ${r.nsPerPacket.toFixed(1)} | ${p ? fmtRatio(r.nsPerPacket / p) : '–'} | ${q ? fmtRatio(r.nsPerPacket / q) : '–'} | ${vs} | ${r.iterations} | ${r.verified} |`);
  }
  out.push('');
  const cm = d.connectionMemory;
  if (cm) {
    out.push(`Memory per connection (the kernel's own accounting of kp_ct, fdinfo memlock): ${fmtInt(cm.tableBytes)} bytes for ` +
      `${fmtInt(cm.connections)} connections, ${cm.perConnection.toFixed(0)} bytes each (a forward and a reply entry, preallocated). ` +
      `The table is shared by all CPUs, so this is the figure at ${cm.cpus} CPUs and at 64 alike: bytes = ${cm.perConnection.toFixed(0)} × connections, ` +
      'with no per-CPU term (the per-CPU flow table it replaced held 24 bytes per CPU per flow, 1.5 KiB per flow at 64 CPUs, plus a reverse-NAT entry).', '');
  }
  if (!d.katran) {
    out.push('Katran was not measured in this run: `npm run bench -- --katran OBJ` adds it (README: Benchmarks says how to build OBJ).', '');
  }
  return out;
}

const ms1 = (v: number | undefined) => (v === undefined ? '–' : v < 10 ? v.toFixed(1) : fmtInt(v));

/** One sentence a size, every figure from the row (ratios against its own floors). */
function kubeReading(k: KubeRow): string {
  const p99 = (a?: number[]) => (a?.length ? quantile(a, 0.99) : undefined);
  const p50 = (a?: number[]) => (a?.length ? quantile(a, 0.5) : undefined);
  const parts = [
    `from start to programmed ${ms1(k.startMs)} ms${k.listFloorMs ? ` (${fmtRatio(k.startMs! / k.listFloorMs)}× a process that only lists the same objects, ${ms1(k.listFloorMs)} ms` : ''}${k.fileStartMs ? `; ${fmtRatio(k.startMs! / k.fileStartMs)}× \`kpbpf run -f\` with the same services in a file, ${ms1(k.fileStartMs)} ms` : ''}${k.listFloorMs ? ')' : ''}`,
    `an EndpointSlice change from the watch event to the maps p50 ${ms1(p50(k.changeEventMs))} ms, p99 ${ms1(p99(k.changeEventMs))} ms`,
    `from the API write to the applied line p99 ${ms1(p99(k.changeWriteMs))} ms${k.changeFloorMs?.length ? ` (${fmtRatio(p99(k.changeWriteMs)! / p99(k.changeFloorMs)!)}× the p99 of a process that only watches, ${ms1(p99(k.changeFloorMs))} ms)` : ''}`,
    `resident ${k.rssBytes ? (k.rssBytes / 2 ** 20).toFixed(0) : '–'} MiB once the first sync settled${k.rssSyncBytes ? ` (${(k.rssSyncBytes / 2 ** 20).toFixed(0)} MiB at it)` : ''}${k.fileRssBytes && k.rssBytes ? ` (${fmtRatio(k.rssBytes / k.fileRssBytes)}× the file daemon's ${(k.fileRssBytes / 2 ** 20).toFixed(0)} MiB)` : ''}`,
    `a relist of everything ${ms1(k.relistMs)} ms, ${k.relistApplied === 0 ? 'applying nothing' : `applying ${k.relistApplied} change(s)`}`,
  ];
  return `- Kubernetes API, ${k.services.toLocaleString('en-US')} services × 8 endpoints: ${parts.join('; ')}.`;
}

/**
 * Issue 22's targets at 10,000 services, each met or not by this run's own figures (the row the
 * Kubernetes section lists): one line each, computed, never written by hand.
 */
export function kubeTargets(rows: KubeRow[]): string[] {
  const k = rows.find((r) => r.services === 10_000 && r.startMs !== undefined);
  if (!k) return [];
  const verdict = (ok: boolean) => (ok ? 'met' : 'not met');
  const out = ['## Issue 22\'s targets in this run (10,000 services × 8 endpoints)', '', 'Computed from this run\'s Kubernetes row below:'];
  if (k.changeEventMs?.length) {
    const p99 = quantile(k.changeEventMs, 0.99);
    out.push(`- An EndpointSlice change from the watch event to the maps, p99 ≤ 10 ms: ${verdict(p99 <= 10)}, ${ms1(p99)} ms (p50 ${ms1(quantile(k.changeEventMs, 0.5))} ms).`);
  }
  if (k.relistMs !== undefined) out.push(`- A relist of everything that changes nothing, ≤ 1 s: ${verdict(k.relistMs <= 1000 && k.relistApplied === 0)}, ${ms1(k.relistMs)} ms, ${k.relistApplied === 0 ? 'nothing applied' : `${k.relistApplied} change(s) applied`}.`);
  if (k.rssBytes) {
    const mib = k.rssBytes / 2 ** 20;
    out.push(`- Resident ≤ 300 MiB: ${verdict(mib <= 300)}, ${mib.toFixed(0)} MiB once the first sync settled${k.fileRssBytes ? `, ${fmtRatio(k.rssBytes / k.fileRssBytes)}× the file daemon's ${(k.fileRssBytes / 2 ** 20).toFixed(0)} MiB` : ''}.`);
  }
  out.push(`- Start to programmed ≤ 2 s: ${verdict(k.startMs! <= 2000)}, ${ms1(k.startMs)} ms${k.fileStartMs ? `, ${fmtRatio(k.startMs! / k.fileStartMs)}× \`kpbpf run -f\` with the same services in the same run (${ms1(k.fileStartMs)} ms)` : ''}.`);
  out.push('');
  return out;
}

function kubeSection(rows: KubeRow[]): string[] {
  if (!rows.length) return [];
  const p = (a: number[] | undefined, q: number) => (a?.length ? ms1(quantile(a, q)) : '');
  const out = ['## Kubernetes API source (kpbpf run --kubernetes)', '',
    '| services | start to programmed ms | own sync ms | lists ms (sent as the program begins to load, which they include) | floor: list only ms | kpbpf run -f, same services: start ms | resident MiB, settled (at the sync) | kpbpf run -f: resident MiB, settled | change, event to maps p50 / p99 ms | change, API write to applied p50 / p99 ms | floor: watch only p50 / p99 ms | relist ms | applied by the relist | note |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|'];
  for (const k of rows) {
    out.push(`| ${k.services.toLocaleString('en-US')} | ${ms1(k.startMs)} | ${ms1(k.syncMs)} | ${ms1(k.listMs)} | ${ms1(k.listFloorMs)} | ${ms1(k.fileStartMs)} | ${k.rssBytes ? (k.rssBytes / 2 ** 20).toFixed(0) : ''}${k.rssSyncBytes ? ` (${(k.rssSyncBytes / 2 ** 20).toFixed(0)})` : ''} | ${k.fileRssBytes ? (k.fileRssBytes / 2 ** 20).toFixed(0) : ''} | ${p(k.changeEventMs, 0.5)} / ${p(k.changeEventMs, 0.99)} | ${p(k.changeWriteMs, 0.5)} / ${p(k.changeWriteMs, 0.99)} | ${p(k.changeFloorMs, 0.5)} / ${p(k.changeFloorMs, 0.99)} | ${ms1(k.relistMs)} | ${k.relistApplied ?? ''} | ${k.unavailable ?? k.error ?? ''} |`);
  }
  out.push('', 'The fake API server (src/testbed/fakeapi.ts, HTTPS with a generated CA and a bearer token) runs in a namespace of its own with the ' +
    'daemon, holding N Services (one TCP port each) and one EndpointSlice each with 8 ready endpoints, and this node\'s Node. "Start to programmed": ' +
    'from spawning `kpbpf run --kubernetes` to its "synced" log line (Node start-up, the lists, translation, the full sync into the maps, and the program: it loads on a thread of its own from the start, the maps first); ' +
    '"own sync": the daemon\'s full sync, from the translated lists to that line (including any wait for the program); the floor: a process that lists the same Services and EndpointSlices with the ' +
    `same client and exits; the baseline: \`kpbpf run -f\` with the same services in its file (spawn to its first "applied" line, and its resident memory), in the same namespace. Resident memory: read once the first sync has settled (after the changes below for kpbpf run --kubernetes, 2 s after its first apply for kpbpf run -f; both modes make one full collection and a malloc_trim after their first sync), and in parentheses at the sync's log line. Changes: ${KUBE_CHANGES} one-endpoint EndpointSlice updates (after a few not counted), each timed by the daemon from the watch event ` +
    'to the maps (its "applied" line\'s queued + apply) and from the write command to the API server to that line as the log arrives; the floor: the same writes seen by a process that only watches EndpointSlices. ' +
    'Relist: the watch ended and its version compacted away (410), as after an API server restart; the time of the longer of the two lists (list, parse, compare with the store).', '');
  return out;
}
