// A full sync through the prefetch: its Maglev tables are built on the helper thread before the
// backends have ids. What the maps end up holding must be exactly the tables built for those ids,
// and a prefetch never outlives its apply.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/validate.js';
import { buildMaglevTable } from '../../src/maglev/table.js';
import { hasMaglevPrefetch, prefetchedTables, startConfigPreload, takeConfigPreload } from '../../src/maglev/parallel.js';
import { bpfSkipReason, testControl } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('full sync through the prefetch', { skip: reason }, async () => {});
else run();

function run() {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-fullsync-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const control = testControl(t, 'fullsync');
  const raw = {
    conf: { buckets: 1024 },
    vips: Array.from({ length: 300 }, (_, i) => ({
      prefix: `198.18.${60 + (i >> 8)}.${i & 255}/32`,
      port: 80,
      ...(i % 2 ? { new_len: 251 } : {}),
      backends: Array.from({ length: 1 + (i % 5) }, (_, j) => ({ address: `198.18.${70 + (i >> 6)}.${4 * (i & 63) + j}`, weight: 1 + ((i + j) % 3), ...(j === 4 ? { terminating: true } : {}) })),
    })),
  };

  /** Every VIP's table in the maps against one built here from its backends' ids. */
  const tablesMatch = (t: Test) => {
    let bad = 0;
    for (const v of control.vips.list()) {
      const active = v.backends.filter((b) => b.state === 'active');
      const ready = active.filter((b) => !b.terminating);
      const want = buildMaglevTable((ready.length ? ready : active).map((b) => ({ id: b.id, key: b.address, weight: b.weight })), v.newLen);
      const got = control.dp.getMaglevTable(v.id);
      if (!got || !Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer))) bad++;
    }
    t.equal(bad, 0, 'every table in the store is the one its backend ids give');
  };

  t.test('a full sync: its tables come from the prefetch and are the right ones', async (t) => {
    const before = prefetchedTables();
    const r = control.apply(parseConfig(raw), { dryRun: false });
    t.ok(r.plan.length > 256, `${r.plan.length} operations: a batch large enough to prefetch`);
    t.equal(prefetchedTables() - before, 300, 'all 300 tables were built ahead');
    t.notOk(hasMaglevPrefetch(), 'the prefetch ends with the apply');
    tablesMatch(t);
  });

  t.test("a daemon's preload: used by the next apply, and ended by it even when it has nothing to do", async (t) => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify(raw));
    const got = takeConfigPreload(startConfigPreload(file)!);
    t.ok(got && hasMaglevPrefetch(), 'preloaded, with its tables');
    t.equal(control.apply(got!.source.config, { dryRun: false }).plan.length, 0, 'the maps hold the file already');
    t.notOk(hasMaglevPrefetch(), 'the prefetch is dropped');
    // Every backend weight changed: all tables are built again, from a preload of the new file.
    const heavier = { ...raw, vips: raw.vips.map((v) => ({ ...v, backends: v.backends.map((b) => ({ ...b, weight: b.weight + 1 })) })) };
    writeFileSync(file, JSON.stringify(heavier));
    const next = takeConfigPreload(startConfigPreload(file)!);
    const before = prefetchedTables();
    control.apply(next!.source.config, { dryRun: false });
    t.equal(prefetchedTables() - before, 300, 'the new weights, all tables from the preload');
    t.notOk(hasMaglevPrefetch());
    tablesMatch(t);
  });
}
