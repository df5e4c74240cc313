// Which backends a VIP's Maglev table is made of (src/dataplane/tables.ts), as kube-proxy picks
// endpoints for new connections.
import t from 'tap';
import { buildTable, tableBackends } from '../../src/dataplane/tables.js';
import { BACKEND_STATE, type Backend } from '../../src/maps/codecs.js';

const slot = (addr: string, o: Partial<Backend> = {}): Backend => ({ addr, port: 80, state: BACKEND_STATE.active, gen: 1, vipId: 1, weight: 1, ...o });
const addrs = (ids: number[], slots: (Backend | undefined)[], local = false) => tableBackends(ids, slots, local).map((s) => s.b.addr);

t.test('active backends only; local ones for a local table', async (t) => {
  const slots = [undefined, slot('198.18.1.1'), slot('198.18.1.2', { state: BACKEND_STATE.draining }), slot('198.18.1.3', { local: true }), slot('198.18.1.4', { state: BACKEND_STATE.free })];
  t.same(addrs([1, 2, 3, 4], slots), ['198.18.1.1', '198.18.1.3'], 'draining and free slots take no new connections');
  t.same(addrs([1, 2, 3, 4], slots, true), ['198.18.1.3'], 'the local table: this node only');
});

t.test('terminating endpoints only while no ready one exists (KEP-1669)', async (t) => {
  const slots = [undefined, slot('198.18.2.1', { terminating: true }), slot('198.18.2.2'), slot('198.18.2.3', { terminating: true, local: true })];
  t.same(addrs([1, 2, 3], slots), ['198.18.2.2'], 'a ready one: the terminating ones are left out');
  t.same(addrs([1, 3], slots), ['198.18.2.1', '198.18.2.3'], 'none ready: the terminating ones serve');
  t.same(addrs([1, 2, 3], slots, true), ['198.18.2.3'], "the local table's own rule: its only local endpoint is terminating, so it serves");
});

t.test('a table over the slots, none without backends', async (t) => {
  const slots = [undefined, slot('198.18.3.1'), slot('198.18.3.2', { weight: 3 })];
  const table = buildTable(tableBackends([1, 2], slots), 7)!;
  t.equal(table.length, 7);
  t.same([...new Set(table)].sort(), [1, 2], 'filled with the slot ids');
  t.ok(table.filter((id) => id === 2).length > table.filter((id) => id === 1).length, 'by weight');
  t.equal(buildTable([], 7), undefined);
});
