// The Kubernetes source's desired state: what handlers record, what take() translates, claims
// between services, and refusals that keep what a service had.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DesiredServices } from '../../src/kube/desired.js';
import { goTime, nodeAddressesOf, nodeEligible, readConfFile } from '../../src/kube/daemon.js';
import { nodeNameOf } from '../../src/cli/run.js';
import { ep, node, slice, svc } from '../helpers/kubeobjects.js';

const web = svc('web', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] });
const webSlice = (addrs: string[]) => slice('web', [{ name: '', port: 8080 }], addrs.map((a) => ep(a)));
const backends = (d: DesiredServices, key = 'default/web') => d.vipsOf(key).map((v) => v.backends.map((b) => b.address));

t.test('handlers record; take translates the dirty services; commit makes them current', async (t) => {
  const d = new DesiredServices('node-a');
  d.setService(web);
  d.setSlice(webSlice(['198.18.1.1', '198.18.1.2']));
  t.same([...d.dirty], ['default/web']);
  const r = d.take({});
  t.equal(r.changes.length, 1);
  t.match(r.changes[0], { key: 'default/web', before: [], after: [{ prefix: '198.18.100.1/32', node_port: 30080, type: 'nodeport' }] });
  d.commit(r.changes);
  t.same(backends(d), [['198.18.1.1', '198.18.1.2']]);
  // The same objects again (a relist): nothing to do.
  d.setService(web);
  d.setSlice(webSlice(['198.18.1.1', '198.18.1.2']));
  t.same(d.take({}).changes, [], 'a relist that changes nothing changes nothing');
  d.setSlice(webSlice(['198.18.1.1']));
  const r2 = d.take({});
  t.same(r2.changes.map((c) => c.after[0].backends.length), [1]);
  d.commit(r2.changes);
  d.setService(web, true);
  const r3 = d.take({});
  t.match(r3.changes, [{ key: 'default/web', after: [] }], 'a deleted service: its VIPs go');
  d.commit(r3.changes);
  t.same(d.vips(), []);
});

t.test('a slice moved to another service (relabelled) or deleted dirties its service', async (t) => {
  const d = new DesiredServices('node-a');
  d.setService(web);
  d.setService(svc('api', { clusterIP: '198.18.100.2', clusterIPs: ['198.18.100.2'] }));
  d.setSlice(webSlice(['198.18.1.1']));
  d.commit(d.take({}).changes);
  const moved = webSlice(['198.18.1.1']);
  moved.metadata!.labels!['kubernetes.io/service-name'] = 'api';
  d.setSlice(moved);
  t.same([...d.dirty].sort(), ['default/api', 'default/web']);
  d.commit(d.take({}).changes);
  t.same(backends(d), [[]]);
  t.same(backends(d, 'default/api'), [['198.18.1.1']]);
  d.setSlice(moved, true);
  d.commit(d.take({}).changes);
  t.same(backends(d, 'default/api'), [[]]);
});

t.test('two services claiming one VIP: the older holds it; when it goes, the other takes over', async (t) => {
  const d = new DesiredServices('node-a');
  const a = svc('a', { clusterIP: '198.18.100.1', clusterIPs: ['198.18.100.1'], externalIPs: ['198.18.60.1'] });
  const b = svc('b', { clusterIP: '198.18.100.2', clusterIPs: ['198.18.100.2'], externalIPs: ['198.18.60.1'] });
  a.metadata!.creationTimestamp = '2026-01-01T00:00:00Z';
  b.metadata!.creationTimestamp = '2026-02-01T00:00:00Z';
  d.setService(b);
  d.setService(a);
  const r = d.take({});
  d.commit(r.changes);
  t.same(d.vipsOf('default/a').map((v) => v.prefix), ['198.18.100.1/32', '198.18.60.1/32']);
  t.same(d.vipsOf('default/b').map((v) => v.prefix), ['198.18.100.2/32'], 'b has its cluster IP only');
  t.match(r.notes.find((n) => n.key === 'default/b')?.notes.join(), /198.18.60.1\/32 tcp 80 is held by default\/a/);
  d.setService(a, true);
  d.commit(d.take({}).changes);
  t.same(d.vipsOf('default/b').map((v) => v.prefix), ['198.18.100.2/32', '198.18.60.1/32'], 'b took it over');
});

t.test('a node port held by an older service is not taken', async (t) => {
  const d = new DesiredServices('node-a');
  const a = svc('a', { type: 'NodePort', clusterIP: '198.18.100.1', clusterIPs: ['198.18.100.1'], ports: [{ port: 80, nodePort: 30080 }] });
  const b = svc('b', { type: 'NodePort', clusterIP: '198.18.100.2', clusterIPs: ['198.18.100.2'], ports: [{ port: 80, nodePort: 30080 }] });
  a.metadata!.creationTimestamp = '2026-01-01T00:00:00Z';
  d.setService(a);
  d.setService(b);
  d.commit(d.take({}).changes);
  t.equal(d.vipsOf('default/a').length, 1);
  t.equal(d.vipsOf('default/b').length, 0);
});

t.test('a service the data plane cannot take is refused with the field named, and keeps what it had', async (t) => {
  const d = new DesiredServices('node-a');
  d.setService(web);
  d.commit(d.take({}).changes);
  d.setService(svc('web', { type: 'NodePort', ports: [{ port: 80, nodePort: 31000 }] }));
  const r = d.take({ nodeport_range: '30000-30999' });
  t.same(r.changes, []);
  t.match(r.invalid, [{ key: 'default/web', details: [/node_port: must be within the node port range 30000-30999, got 31000/] }]);
  t.equal(d.vipsOf('default/web')[0].node_port, 30080, 'the previous VIPs stay');
  t.same([...d.invalid], ['default/web'], 'counted as invalid until a translation passes');
  d.setService(web);
  d.take({ nodeport_range: '30000-30999' });
  t.same([...d.invalid], [], 'valid again');
});

t.test('a new zone on the Node re-translates every service (topology hints)', async (t) => {
  const d = new DesiredServices('node-a');
  d.setService(web);
  d.setSlice(slice('web', [{ name: '', port: 8080 }], [ep('198.18.1.1', { hints: { forZones: [{ name: 'z1' }] } }), ep('198.18.1.2', { hints: { forZones: [{ name: 'z2' }] } })]));
  d.commit(d.take({}).changes);
  t.same(backends(d), [['198.18.1.1', '198.18.1.2']], 'no zone: no filtering');
  d.setNode({ name: 'node-a', zone: 'z2' });
  t.same([...d.dirty], ['default/web']);
  d.commit(d.take({}).changes);
  t.same(backends(d), [['198.18.1.2']]);
});

t.test('Node helpers: addresses, eligibility; health times in Go\'s format', async (t) => {
  t.same(nodeAddressesOf(node('n', ['198.18.0.1', '2001:db8::1'])), ['198.18.0.1', '2001:db8::1'], 'InternalIP, not Hostname');
  t.equal(nodeAddressesOf(undefined), undefined);
  t.ok(nodeEligible(node('n', [])));
  const deleting = node('n', []);
  deleting.metadata!.deletionTimestamp = '2026-12-07T00:00:00Z';
  t.notOk(nodeEligible(deleting), 'being deleted');
  const tainted = node('n', []);
  tainted.spec = { taints: [{ key: 'ToBeDeletedByClusterAutoscaler', effect: 'NoSchedule' }] };
  t.notOk(nodeEligible(tainted), 'the autoscaler is about to delete it');
  t.equal(goTime(new Date('2026-12-07T21:10:05.120Z')), '2026-12-07 21:10:05.12 +0000 UTC');
  t.equal(goTime(new Date('2026-12-07T21:10:05.000Z')), '2026-12-07 21:10:05 +0000 UTC');
  t.equal(goTime(undefined), '0001-01-01 00:00:00 +0000 UTC', 'the zero time, before any sync');
});

t.test('--node-name, $NODE_NAME, the hostname', async (t) => {
  t.equal(nodeNameOf('Node-A'), 'node-a');
  t.equal(nodeNameOf(undefined, { NODE_NAME: 'worker-3' }), 'worker-3');
  t.throws(() => nodeNameOf('bad name'), /--node-name: expected a Kubernetes node name/);
});

t.test('the -f file with --kubernetes: conf and interfaces; vips refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-kconf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'c.json');
  writeFileSync(f, JSON.stringify({ conf: { buckets: 4096 }, interfaces: [{ name: 'eth0' }] }));
  t.match(readConfFile(f), { conf: { buckets: 4096 }, config: { conf: { buckets: 4096 }, interfaces: [{ name: 'eth0', mode: 'auto' }] }, manageInterfaces: true });
  writeFileSync(f, JSON.stringify({ vips: [{ prefix: '198.18.100.1/32', port: 80, backends: [] }] }));
  t.throws(() => readConfFile(f), /\/vips: with --kubernetes, VIPs come from the API/);
  writeFileSync(f, JSON.stringify({ conf: { buckets: 1000 } }));
  t.throws(() => readConfFile(f), { message: /invalid config/ });
  t.match(readConfFile(undefined), { manageInterfaces: false, config: { interfaces: [] } });
});
