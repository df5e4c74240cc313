// The report's sentences say what the run's figures say: the control plane's comparison is computed
// from the rows (it was fixed text, "iptables-nft and nft apply a delta in about 0.1 s", beside 205
// and 648 ms in its own table).
import t from 'tap';
import { controlComparison, kubeTargets } from '../../src/bench/report.js';
import type { ControlRow } from '../../src/bench/control.js';

const row = (tool: ControlRow['tool'], services: number, fullMs: number, changeMs: number): ControlRow => ({ tool, services, fullMs, changeMs });

t.test('faster and slower as the figures fall', async (t) => {
  const control = [
    row('kpbpf', 1000, 900, 600), row('iptables-legacy', 1000, 300, 80), row('iptables-nft', 1000, 500, 205), row('nft', 1000, 1200, 648),
    row('kpbpf', 10000, 1500, 700), row('iptables-legacy', 10000, 4200, 150), row('iptables-nft', 10000, 8700, 900), row('nft', 10000, 30000, 1200),
  ];
  const s = controlComparison({ control });
  t.match(s, /At 1,000 services in this run its full load \(900 ms\) was faster than nft and slower than iptables-legacy and iptables-nft; a one-endpoint change \(600 ms\) took longer than iptables-legacy's 80 ms and iptables-nft's 205 ms\./);
  t.match(s, /At 10,000 services in this run its full load \(1,500 ms\) was faster than iptables-legacy and iptables-nft and nft; a one-endpoint change \(700 ms\) took longer than iptables-legacy's 150 ms\./);
  t.notMatch(s, /0\.1 s/);
});

t.test('nothing to compare: no sentence', async (t) => {
  t.equal(controlComparison({ control: [row('kpbpf', 1000, 900, 600)] }), '');
  t.equal(controlComparison({ control: [] }), '');
});

t.test("issue 22's targets: each line met or not by the row's own figures", async (t) => {
  const row = { services: 10_000, startMs: 2478, fileStartMs: 2199, changeEventMs: [0.4, 0.5, 1.8], relistMs: 517, relistApplied: 0, rssBytes: 266 * 2 ** 20, fileRssBytes: 272 * 2 ** 20 };
  const lines = kubeTargets([row]).join('\n');
  t.match(lines, /p99 ≤ 10 ms: met, 1\.8 ms/);
  t.match(lines, /≤ 1 s: met, 517 ms, nothing applied/);
  t.match(lines, /Resident ≤ 300 MiB: met, 266 MiB once the first sync settled, 0\.98× the file daemon's 272 MiB/);
  t.match(lines, /Start to programmed ≤ 2 s: not met, 2,478 ms, 1\.13× `kpbpf run -f`/);
  t.match(kubeTargets([{ ...row, startMs: 1900, rssBytes: 310 * 2 ** 20 }]).join('\n'), /Resident ≤ 300 MiB: not met, 310 MiB[\s\S]*≤ 2 s: met, 1,900 ms/);
  t.same(kubeTargets([{ services: 1000, startMs: 900 }]), [], 'no 10k row: no section');
});
