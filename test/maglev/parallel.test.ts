// A large batch is built on two threads and must give exactly the tables one thread gives; so must
// tables prefetched by the helper thread before their backends had ids.
import t from 'tap';
import { buildMaglevTables, endMaglevPrefetch, helperBatches, MappedTable, PARALLEL_MIN_JOBS, prefetchedTables, prefetchMaglevTables, prepareMaglevHelper, type MaglevTable } from '../../src/maglev/parallel.js';
import { buildMaglevTable } from '../../src/maglev/table.js';

const jobs = Array.from({ length: PARALLEL_MIN_JOBS + 45 }, (_, v) => ({
  backends: Array.from({ length: 1 + (v % 9) }, (_, i) => ({ id: i + 1, key: `198.18.${v >> 8}.${v & 255}:${8080 + i}`, weight: 1 + ((v + i) % 3) })),
  size: [7, 13, 251, 1021][v % 4],
  tag: `vip ${v}`,
}));

const words = (x: MaglevTable) => (x instanceof MappedTable ? x.toArray() : x);
const same = (a: MaglevTable, b: Uint32Array) => Buffer.from(words(a).buffer, words(a).byteOffset, words(a).byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

t.test('two threads, the same tables in the same order', async (t) => {
  prepareMaglevHelper();
  const got = buildMaglevTables(jobs);
  t.equal(got.length, jobs.length);
  const bad = jobs.findIndex((j, i) => !same(got[i], buildMaglevTable(j.backends, j.size)));
  t.equal(bad, -1, 'every table equal to the single-thread one');
  t.equal(helperBatches(), 1, 'the helper thread built its half');
});

t.test('a bad job throws the single-thread error, whichever thread had it', async (t) => {
  const broken = [...jobs];
  broken[broken.length - 1] = { backends: [{ id: 1, key: 'a', weight: 1 }], size: 1000, tag: 'bad' };
  t.throws(() => buildMaglevTables(broken), { code: 'KP_ERR_ARG', message: /prime/ });
});

t.test('prefetched tables: the same tables, with the ids given later', async (t) => {
  // Prefetched with ids that mean nothing, and in another order: only tag, keys, weights and size count.
  prefetchMaglevTables(jobs.map((j) => ({ tag: j.tag, backends: [...j.backends].reverse().map((b) => ({ ...b, id: 999 })), size: j.size })));
  const withIds = jobs.map((j, v) => ({ ...j, backends: j.backends.map((b, i) => ({ ...b, id: 1000 * v + i + 1 })) }));
  // Jobs the prefetch did not build: other weights, another size, another backend, no tag, another tag.
  const changed = new Set([3, 7, 8, 9, 10]);
  withIds[3] = { ...withIds[3], backends: withIds[3].backends.map((b) => ({ ...b, weight: b.weight + 7 })) };
  withIds[7] = { ...withIds[7], size: 1031 };
  withIds[8] = { ...withIds[8], backends: [...withIds[8].backends, { id: 5, key: 'one more', weight: 1 }] };
  withIds[9] = { ...withIds[9], tag: undefined as unknown as string };
  withIds[10] = { ...withIds[10], tag: 'vip 11' };
  // A weight-0 backend takes no slots: the prefetched table still fits.
  withIds[5] = { ...withIds[5], backends: [...withIds[5].backends, { id: 77, key: 'not in the table', weight: 0 }] };
  const before = prefetchedTables();
  const got = buildMaglevTables(withIds);
  endMaglevPrefetch();
  t.equal(prefetchedTables() - before, withIds.length - changed.size, 'every table but the changed ones came from the prefetch');
  t.same([...changed].map((i) => got[i] instanceof MappedTable), [...changed].map(() => false), 'the changed ones were built');
  const bad = withIds.findIndex((j, i) => !same(got[i], buildMaglevTable(j.backends, j.size)));
  t.equal(bad, -1, 'every table equal to one built for its ids');
});

t.test('a prefetch ended early is not used, and a bad size is still refused', async (t) => {
  prefetchMaglevTables(jobs);
  endMaglevPrefetch();
  const before = prefetchedTables();
  const got = buildMaglevTables(jobs.slice(0, 10));
  t.equal(prefetchedTables(), before, 'nothing taken from an ended prefetch');
  t.ok(got.every((x, i) => same(x, buildMaglevTable(jobs[i].backends, jobs[i].size))));
  prefetchMaglevTables([...jobs, { tag: 'bad', backends: [{ id: 1, key: 'a', weight: 1 }], size: 1000 }]);
  t.throws(() => buildMaglevTables([{ tag: 'bad', backends: [{ id: 1, key: 'a', weight: 1 }], size: 1000 }]), { code: 'KP_ERR_ARG', message: /prime/ });
  endMaglevPrefetch();
});

t.test('a helper thread that died is given up after a short wait, its half built here, and replaced', async (t) => {
  const { abandonedHelpers, killHelperForTests } = await import('../../src/maglev/parallel.js');
  buildMaglevTables(jobs); // a helper is running
  await killHelperForTests(); // gone, as a crash would leave it: the caller is not told
  const before = { abandoned: abandonedHelpers(), batches: helperBatches() };
  const got = buildMaglevTables(jobs); // returns (it waited up to 60 s before; a pickup timeout now)
  t.equal(jobs.findIndex((j, i) => !same(got[i], buildMaglevTable(j.backends, j.size))), -1, 'every table right');
  t.equal(abandonedHelpers(), before.abandoned + 1, 'the dead helper was given up');
  t.equal(helperBatches(), before.batches, 'no share came from it');
  buildMaglevTables(jobs);
  t.equal(helperBatches(), before.batches + 1, 'a new helper takes the next batch');
});
