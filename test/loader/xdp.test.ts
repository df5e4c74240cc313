// XDP attach through pinned bpf_links inside a private network namespace (needs root).
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildFixture, FIXTURES, notRootReason, privateBpffs, removeFixture } from './fixtures/helpers.js';

const skip = notRootReason() ?? false;
const ns = `kpbpf-h2-xdp-${process.pid}`;

const ip = (...args: string[]) => execFileSync('ip', args).toString();
const inNs = (...args: string[]) => ip('netns', 'exec', ns, ...args);

/** Run the child in the namespace; each run is a separate process, so links must outlive it. */
function child(cmd: string, pinDir: string, obj = ''): Record<string, unknown> {
  const out = inNs(process.execPath, '--import', '@tapjs/typescript/import', join(FIXTURES, 'xdp-child.ts'), cmd, pinDir, obj);
  return JSON.parse(out) as Record<string, unknown>;
}

/** XDP program ids on an interface in the namespace, from `ip -j link`. */
function xdpProgs(ifname: string): number[] {
  const [l] = JSON.parse(inNs('ip', '-j', '-d', 'link', 'show', 'dev', ifname)) as Array<{ xdp?: { prog?: { id: number }; attached?: Array<{ prog: { id: number } }> } }>;
  if (!l.xdp) return [];
  return l.xdp.attached ? l.xdp.attached.map((a) => a.prog.id) : l.xdp.prog ? [l.xdp.prog.id] : [];
}

t.test('attach native and auto, list, detach, across processes', { skip }, async (t) => {
  const obj = buildFixture('mini');
  const fs = privateBpffs('xdp');
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    fs.umount();
    removeFixture(obj);
  });
  ip('netns', 'add', ns);
  inNs('ip', 'link', 'add', 'kpv0', 'type', 'veth', 'peer', 'name', 'kpv1');
  for (const d of ['kpv0', 'kpv1', 'lo']) inNs('ip', 'link', 'set', d, 'up');
  const pinDir = join(fs.dir, 'kpbpf');

  const a = child('attach', pinDir, obj);
  t.equal(a.kpv0, 'native', 'veth takes native XDP');
  t.equal(a.lo, 'generic', 'loopback has no driver XDP: auto fell back to generic');
  t.equal(a.nativeOnLo, 'KP_ERR_BPF', 'native on loopback is an error');
  t.equal(a.missing, 'KP_ERR_NET', 'a missing interface is named');

  t.equal(xdpProgs('kpv0').length, 1, 'kpv0 still has the program after the process exited');
  t.equal(xdpProgs('lo').length, 1, 'lo too');

  const l = child('list', pinDir) as { links: Array<{ ifname: string; ifindex: number; path: string }> };
  t.same(l.links.map((x) => x.ifname).sort(), ['kpv0', 'lo']);
  for (const x of l.links) t.equal(x.path, join(pinDir, 'links', `if${x.ifindex}`), 'pinned by ifindex');

  const d = child('detach', pinDir) as { again: string; links: unknown[] };
  t.equal(d.again, 'KP_ERR_STATE', 'detaching twice says it is not attached');
  t.same(d.links, []);
  t.same(xdpProgs('kpv0'), [], 'kpv0 detached');
  t.same(xdpProgs('lo'), [], 'lo detached');
});
