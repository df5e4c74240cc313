// An upgrade from the previous layout with a live connection: the previous revision's kp.bpf.o, built
// from the repository's history, runs the data plane (this kpbpf set it up; the old program is then
// loaded over its pins and the interfaces switched to it, as a running older version would leave
// things), and the next kpbpf command takes it over: the connection keeps its (drained) backend
// through both switches, the older per-CPU counters' counts are carried into their successors, and
// the command says what it carried over. Real sockets in namespaces, 198.18.0.0/15 only.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '../../src/loader/object.js';
import { check, dupFd, lb, withPinnedFd } from '../../src/sys/libbpf.js';
import { updateLinks } from '../../src/loader/xdp.js';
import { BpfMap, PerCpuMap, addRecords } from '../../src/maps/map.js';
import * as c from '../../src/maps/codecs.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason, KPBPF } from '../helpers/e2e.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The last revision with the previous layout (per-CPU counter arrays kp_vip_stats, kp_be_stats). */
const PREVIOUS = '915d018914c02fec4ccae6cbbb6fca775f14eaf4';
const VIP = '198.18.100.50';
const OTHER_VIP = '198.18.100.51';

function previousMissing(): string | undefined {
  const r = spawnSync('git', ['-C', REPO, 'cat-file', '-e', `${PREVIOUS}^{commit}`]);
  return r.status === 0 ? undefined : `the repository's history lacks ${PREVIOUS.slice(0, 12)} (a shallow clone?), whose kp.bpf.o is the previous layout`;
}

/** The previous revision's bpf/ built as scripts/build-bpf.sh builds it. */
function buildPrevious(dir: string): string {
  execFileSync('sh', ['-c', `git -C "${REPO}" archive ${PREVIOUS} bpf | tar -x -C "${dir}"`]);
  const multiarch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
  const arch = process.arch === 'arm64' ? 'arm64' : 'x86';
  const out = join(dir, 'kp.bpf.o');
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`, `-I/usr/include/${multiarch}`, '-c', join(dir, 'bpf/kp.bpf.c'), '-o', out]);
  return out;
}

/** The previous program over the pins, as that version's own start would leave it: its maps reused
 * (its counter arrays made), its program pinned, the interfaces switched to it, and none of this
 * version's own maps left pinned. */
function runPrevious(object: string, pins: string): void {
  const obj = BpfObject.open(object);
  try {
    const ctMax = withPinnedFd(join(pins, 'kp_ct'), (fd) => new BpfMap(dupFd(fd), c.flowKey, c.ct).info.maxEntries);
    obj.setMaxEntries('kp_ct', ctMax);
    const fresh = obj.maps().map((m) => m.name).filter((n) => !obj.reusePinned(n, join(pins, n)));
    obj.load();
    for (const n of fresh) obj.pinMap(n, join(pins, n));
    const progs = new BpfMap(dupFd(obj.mapFd('kp_progs')), c.u32, c.u32, 'kp_progs');
    progs.update(0, obj.progFd('kp_xdp6'));
    progs.close();
    rmSync(join(pins, 'prog'));
    check('bpf_obj_pin', lb.bpf_obj_pin(obj.progFd('kp_xdp'), join(pins, 'prog')), 'prog');
    updateLinks(pins, obj.progFd('kp_xdp'));
  } finally {
    obj.close();
  }
  for (const n of ['kp_vip_stats_v2', 'kp_be_stats_v2']) rmSync(join(pins, n), { force: true });
}

const skip = skipUnlessCi(e2eSkipReason()) ?? previousMissing();
if (skip) t.test('an upgrade from the previous layout', { skip }, async () => {});
else run();

function run() {
  const { topo, bpffs, kp, kpJson, watch } = e2eHarness(t, 'e2eupgrade', 2);
  const pins = join(bpffs, 'kpbpf');
  const build = mkdtempSync(join(tmpdir(), 'kpbpf-previous-'));
  t.teardown(() => rmSync(build, { recursive: true, force: true }));

  t.test('a live connection keeps its backend through a downgrade and the upgrade back; counts carried over', async (t) => {
    const previous = buildPrevious(build);
    for (const b of topo.backends) await topo.startServers(b);
    kp('attach', ...topo.nodeIfs());
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'tcp', 'port', '80', 'target', '8080');
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', ...topo.backends.map((b) => b.addr));
    const vipId = (kpJson('show', 'vips') as { id: number; prefix: string }[]).find((v) => v.prefix === `${VIP}/32`)!.id;

    const pause = `/tmp/kpbpf-e2eupgrade-${process.pid}`;
    const conn = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '3', '--pause-file', pause]);
    t.teardown(() => ['1', '2'].forEach((n) => rmSync(`${pause}.${n}`, { force: true })));
    t.ok(await conn.waitFor('request 0 done'), 'first request, through this version');
    const flows = kpJson('show', 'flows', '--limit', '10000') as { vip: string; backend: string; state: string; idleSeconds: number }[];
    const tracked = flows.filter((f) => f.vip === `${VIP}:80` && f.state === 'established').sort((a, b) => a.idleSeconds - b.idleSeconds)[0];
    t.ok(tracked, 'the connection is tracked');
    const addr = tracked.backend.split(':')[0];
    kp('backend', 'del', `${VIP}/32`, 'protocol', 'tcp', addr); // a lost record would now go to the other one

    runPrevious(previous, pins);
    t.ok(existsSync(join(pins, 'kp_vip_stats')) && !existsSync(join(pins, 'kp_vip_stats_v2')), 'the pins are the previous layout');
    writeFileSync(`${pause}.1`, '');
    t.ok(await conn.waitFor('request 1 done'), 'second request, through the previous version');
    const oldCounts = withPinnedFd(join(pins, 'kp_vip_stats'), (fd) => new PerCpuMap(dupFd(fd), c.u32, c.vipStats).sum(vipId, addRecords)!);
    t.ok(oldCounts.existingPkts > 0n, `the previous version counted the VIP's packets (${oldCounts.existingPkts})`);

    const up = spawnSync('ip', ['netns', 'exec', topo.node.ns, process.execPath, KPBPF, '--bpffs', bpffs, 'vip', 'add', `${OTHER_VIP}/32`, 'protocol', 'tcp', 'port', '80'], { encoding: 'utf8' });
    t.equal(up.status, 0, up.stderr);
    t.match(up.stderr, /took over a data plane an older kpbpf loaded, connections kept; kp_vip_stats: the counts of \d+ ids? carried into kp_vip_stats_v2; kp_be_stats: the counts of \d+ ids? carried into kp_be_stats_v2/, 'the command says what it carried over');
    t.ok(!existsSync(join(pins, 'kp_vip_stats')) && existsSync(join(pins, 'kp_vip_stats_v2')), 'the pins are this layout');
    const stats = kpJson('show', 'stats') as { vips: { id: number; counters: { existingPkts: number } }[] };
    const now = stats.vips.find((v) => v.id === vipId)!.counters.existingPkts;
    t.ok(now >= Number(oldCounts.existingPkts), `the VIP's count went on from the previous version's (${oldCounts.existingPkts} then, ${now} now)`);

    writeFileSync(`${pause}.2`, '');
    await conn.exited;
    const r = conn.out().trim() ? JSON.parse(conn.out().trim()) : { backends: [] };
    t.equal(r.backends.length, 3, `three requests answered on the one connection (${conn.err().trim().split('\n').pop()})`);
    t.equal(new Set(r.backends).size, 1, `it stayed on its backend (${r.backends.join(', ')})`);
    t.equal(topo.backends.find((b) => b.name === r.backends[0])?.addr, addr, 'the drained one');
  });
}
