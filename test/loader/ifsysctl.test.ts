// The interface settings an attach makes and a detach puts back (src/loader/ifsysctl.ts), on a
// stand-in for /proc/sys/net (KPBPF_PROC_SYS_NET): what is needed, the records pinned in a bpffs,
// and a read-only /proc/sys/net (a container without the host's mounted), which changes nothing.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyChanges, neededChanges, recordedIfindexes, restoreChanges } from '../../src/loader/ifsysctl.js';
import { BPF_MAP_TYPE, check, closeFd, lb } from '../../src/sys/libbpf.js';
import { notRootReason, privateBpffs } from './fixtures/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'kpbpf-sysctl-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const saved = process.env.KPBPF_PROC_SYS_NET;
process.env.KPBPF_PROC_SYS_NET = root;
t.teardown(() => (saved === undefined ? delete process.env.KPBPF_PROC_SYS_NET : (process.env.KPBPF_PROC_SYS_NET = saved)));

const set = (ifname: string, key: string, v: number) => {
  mkdirSync(join(root, 'ipv4/conf', ifname), { recursive: true });
  writeFileSync(join(root, 'ipv4/conf', ifname, key), `${v}\n`);
};
const get = (ifname: string, key: string) => Number(readFileSync(join(root, 'ipv4/conf', ifname, key), 'utf8'));

t.test('what an interface needs: accept_local on, a strict rp_filter loose', async (t) => {
  set('all', 'rp_filter', 0);
  set('a', 'accept_local', 0);
  set('a', 'rp_filter', 1);
  t.same(neededChanges('a'), [{ key: 'accept_local', from: 0, to: 1 }, { key: 'rp_filter', from: 1, to: 2 }]);
  set('b', 'accept_local', 1);
  set('b', 'rp_filter', 2);
  t.same(neededChanges('b'), [], 'loose and accepting already: nothing');
  set('all', 'rp_filter', 1);
  set('c', 'accept_local', 1);
  set('c', 'rp_filter', 0);
  t.same(neededChanges('c'), [{ key: 'rp_filter', from: 0, to: 2 }], "strict through conf/all: the interface's goes to 2 (the larger of the two counts)");
  set('all', 'rp_filter', 2);
  t.same(neededChanges('c'), [], 'loose through conf/all: nothing');
  t.same(neededChanges('gone'), [], 'no IPv4 configuration: nothing to do');
});

const skip = notRootReason() ?? false;
t.test('applied with a record pinned per change; restored from the records; read-only changes nothing', { skip }, async (t) => {
  const fs = privateBpffs('sysctl');
  t.teardown(() => fs.umount());
  const pinDir = join(fs.dir, 'kpbpf');
  mkdirSync(pinDir);
  // Any BPF object stands for the link: the record is a pin of it.
  const fd = check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.ARRAY, 'kp_test', 4, 4, 1, null), 'map');
  t.teardown(() => closeFd(fd));
  set('all', 'rp_filter', 0);
  set('a', 'accept_local', 0);
  set('a', 'rp_filter', 1);
  const changes = neededChanges('a');
  t.equal(applyChanges(pinDir, 7, 'a', fd, changes), undefined);
  t.same([get('a', 'accept_local'), get('a', 'rp_filter')], [1, 2], 'both set');
  t.same(readdirSync(join(pinDir, 'ifsysctl')).sort(), ['if7-accept_local-0', 'if7-rp_filter-1'], 'one record each, naming the old value');
  t.same(recordedIfindexes(pinDir), [7]);
  t.same(restoreChanges(pinDir, 8, 'a'), [], "another interface's records are not these");
  t.same(restoreChanges(pinDir, 7, 'a'), [{ key: 'accept_local', from: 1, to: 0 }, { key: 'rp_filter', from: 2, to: 1 }]);
  t.same([get('a', 'accept_local'), get('a', 'rp_filter')], [0, 1], 'both put back');
  t.same(readdirSync(join(pinDir, 'ifsysctl')), [], 'the records are gone');

  // A read-only /proc/sys/net: nothing changes, nothing is recorded, the reason comes back.
  const ro = join(root, '..', `kpbpf-sysctl-ro-${process.pid}`);
  mkdirSync(ro, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', ro]);
  t.teardown(() => {
    execFileSync('umount', [ro]);
    rmSync(ro, { recursive: true, force: true });
  });
  mkdirSync(join(ro, 'ipv4/conf/a'), { recursive: true });
  writeFileSync(join(ro, 'ipv4/conf/a/accept_local'), '0\n');
  writeFileSync(join(ro, 'ipv4/conf/a/rp_filter'), '0\n');
  execFileSync('mount', ['-o', 'remount,ro', ro]);
  process.env.KPBPF_PROC_SYS_NET = ro;
  t.teardown(() => (process.env.KPBPF_PROC_SYS_NET = root));
  const need = neededChanges('a');
  t.same(need, [{ key: 'accept_local', from: 0, to: 1 }]);
  t.match(applyChanges(pinDir, 9, 'a', fd, need), /read-only .*EROFS.*KPBPF_PROC_SYS_NET/);
  t.equal(readFileSync(join(ro, 'ipv4/conf/a/accept_local'), 'utf8'), '0\n', 'unchanged');
  t.same(recordedIfindexes(pinDir), [], 'no record left');
});
