// A large batch is built on two threads and must give exactly the tables one thread gives.
import t from 'tap';
import { buildMaglevTables, helperBatches, PARALLEL_MIN_JOBS, prepareMaglevHelper } from '../../src/maglev/parallel.js';
import { buildMaglevTable } from '../../src/maglev/table.js';

const jobs = Array.from({ length: PARALLEL_MIN_JOBS + 45 }, (_, v) => ({
  backends: Array.from({ length: 1 + (v % 9) }, (_, i) => ({ id: i + 1, key: `198.18.${v >> 8}.${v & 255}:${8080 + i}`, weight: 1 + ((v + i) % 3) })),
  size: [7, 13, 251, 1021][v % 4],
}));

t.test('two threads, the same tables in the same order', async (t) => {
  prepareMaglevHelper();
  const got = buildMaglevTables(jobs);
  t.equal(got.length, jobs.length);
  const bad = jobs.findIndex((j, i) => !Buffer.from(got[i].buffer, got[i].byteOffset, got[i].byteLength).equals(Buffer.from(buildMaglevTable(j.backends, j.size).buffer)));
  t.equal(bad, -1, 'every table equal to the single-thread one');
  t.equal(helperBatches(), 1, 'the helper thread built its half');
});

t.test('a bad job throws the single-thread error, whichever thread had it', async (t) => {
  const broken = [...jobs];
  broken[broken.length - 1] = { backends: [{ id: 1, key: 'a', weight: 1 }], size: 1000 };
  t.throws(() => buildMaglevTables(broken), { code: 'KP_ERR_ARG', message: /prime/ });
});
