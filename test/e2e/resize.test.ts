// A connection-table resize killed (SIGKILL) after each of its steps, with a live TCP connection
// through a VIP whose backend was drained (so a lost record would send its next request to the
// other backend): the next command that changes the data plane finishes the resize, or undoes it,
// and the connection goes on on its backend. Real sockets in namespaces, 198.18.0.0/15 only.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { linkInfo, mapInfo, progMapIdsById } from '../../src/sys/info.js';
import { withPinnedFd } from '../../src/sys/libbpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { CLIENT, e2eHarness, e2eSkipReason, KPBPF } from '../helpers/e2e.js';

const VIP = '198.18.100.40';
const OTHER_VIP = '198.18.100.41';

/** After a kill at each step: whether the next writer finishes the resize or undoes it. */
const STEPS = [
  { point: 'resize.set-aside', outcome: 'undone' },
  { point: 'resize.loaded', outcome: 'undone' },
  { point: 'resize.copied', outcome: 'undone' },
  { point: 'resize.switched', outcome: 'finished' },
] as const;

const skip = skipUnlessCi(e2eSkipReason());
if (skip) t.test('a resize killed at each step', { skip }, async () => {});
else run();

function run() {
  const { topo, bpffs, kp, kpJson, watch } = e2eHarness(t, 'e2eresize', 2);
  const pins = join(bpffs, 'kpbpf');

  t.before(async () => {
    for (const b of topo.backends) await topo.startServers(b);
    kp('attach', ...topo.nodeIfs());
    kp('vip', 'add', `${VIP}/32`, 'protocol', 'tcp', 'port', '80', 'target', '8080');
    kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', ...topo.backends.map((b) => b.addr));
  });

  for (const [i, step] of STEPS.entries()) {
    t.test(`killed after ${step.point}: the next writer's start has it ${step.outcome}, the connection keeps its backend`, async (t) => {
      const pause = `/tmp/kpbpf-e2eresize-${process.pid}-${i}`;
      const c = watch([CLIENT, 'keepalive', '--vip', VIP, '--port', '80', '--count', '2', '--pause-file', pause]);
      t.teardown(() => rmSync(`${pause}.1`, { force: true }));
      t.ok(await c.waitFor('request 0 done'), 'first request on the connection done');
      const flows = kpJson('show', 'flows', '--limit', '10000') as { vip: string; backend: string; state: string; idleSeconds: number }[];
      const conn = flows.filter((f) => f.vip === `${VIP}:80` && f.state === 'established').sort((a, b) => a.idleSeconds - b.idleSeconds)[0];
      t.ok(conn, 'the connection is tracked');
      const addr = conn.backend.split(':')[0];
      kp('backend', 'del', `${VIP}/32`, 'protocol', 'tcp', addr);
      const before = kpJson('show', 'conf').buckets as number;

      const killed = spawnSync('ip', ['netns', 'exec', topo.node.ns, process.execPath, KPBPF, '--bpffs', bpffs, 'conf', 'buckets', String(before * 2)], {
        encoding: 'utf8',
        env: { ...process.env, KPBPF_INJECT: `${step.point}=kill` },
      });
      t.equal(killed.signal, 'SIGKILL', `the resize died at ${step.point} (${killed.stderr.trim()})`);
      t.ok(existsSync(join(pins, 'kp_ct_old')), 'it left the old table set aside');

      // Any command that changes the data plane repairs it first.
      kp('vip', 'add', `${OTHER_VIP}/32`, 'protocol', 'tcp', 'port', '80');
      t.notOk(existsSync(join(pins, 'kp_ct_old')), 'the old table is no longer pinned');
      t.equal(kpJson('show', 'conf').buckets, step.outcome === 'finished' ? before * 2 : before, step.outcome === 'finished' ? 'the new size holds' : 'the old size holds');
      const table = withPinnedFd(join(pins, 'kp_ct'), (fd) => mapInfo(fd).id);
      const links = readdirSync(join(pins, 'links'));
      t.ok(links.length >= 2, 'the interfaces are attached');
      for (const l of links) {
        const prog = withPinnedFd(join(pins, 'links', l), (fd) => linkInfo(fd).progId);
        t.ok(progMapIdsById(prog).includes(table), `${l} runs a program that uses the pinned table`);
      }

      writeFileSync(`${pause}.1`, '');
      await c.exited;
      const r = c.out().trim() ? JSON.parse(c.out().trim()) : { backends: [] };
      t.equal(r.backends.length, 2, `both requests answered on the one connection (${c.err().trim().split('\n').pop()})`);
      t.same(new Set(r.backends).size, 1, `the connection stayed on its backend (${r.backends.join(', ')})`);
      t.equal(topo.backends.find((b) => b.name === r.backends[0])?.addr, addr, 'the drained one');
      kp('backend', 'add', `${VIP}/32`, 'protocol', 'tcp', addr);
      kp('vip', 'del', `${OTHER_VIP}/32`, 'protocol', 'tcp', 'port', '80');
    });
  }
}
