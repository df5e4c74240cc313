// The daemon's first file is read, checked and its tables built on the helper thread while the
// program loads: what it hands over must be what a read here gives, and its tables those a build
// here gives.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMaglevTables, endMaglevPrefetch, hasMaglevPrefetch, MappedTable, prefetchedTables, startConfigPreload, takeConfigPreload } from '../../src/maglev/parallel.js';
import { buildMaglevTable } from '../../src/maglev/table.js';
import { parseConfigText } from '../../src/config/validate.js';
import { maglevTableTag } from '../../src/maglev/expected.js';
import { autoTableLen } from '../../src/maglev/primes.js';

const dir = mkdtempSync(join(tmpdir(), 'kpbpf-preload-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const vips = Array.from({ length: 300 }, (_, i) => ({
  prefix: `198.18.${100 + (i >> 8)}.${i & 255}/32`,
  protocol: 'tcp',
  port: 80,
  ...(i % 3 === 0 ? { new_len: 251 } : {}),
  ...(i % 5 === 0 ? { type: 'nodeport', node_port: 30000 + i, external_traffic_policy: 'local' } : {}),
  backends: Array.from({ length: 1 + (i % 4) }, (_, j) => ({ address: `198.18.${i >> 8}.${j + 4 * (i & 63)}`, weight: 1 + (j % 2), ...(j === 0 ? { local: true } : {}) })),
}));

t.test('the helper reads the file as this thread does, and its tables are the ones built here', async (t) => {
  const file = join(dir, 'c.json');
  const text = JSON.stringify({ conf: { buckets: 65536 }, vips });
  writeFileSync(file, text);
  const pre = startConfigPreload(file);
  t.ok(pre, 'a helper thread');
  const got = takeConfigPreload(pre!);
  t.ok(got, 'a preloaded config');
  const here = parseConfigText(text, file);
  t.same(got!.source, here, 'the same source as a parse here');
  t.same(Buffer.from(got!.bytes), Buffer.from(text), 'the bytes it read');
  t.ok(hasMaglevPrefetch(), 'its tables are the prefetch');
  const jobs = here.config.vips.flatMap((v, i) => {
    const ids = v.backends.map((_, j) => ({ id: 1000 * i + j + 1, key: v.backends[j].address, weight: v.backends[j].weight }));
    const size = v.new_len ?? autoTableLen(v.backends.length);
    const local = v.external_traffic_policy === 'local' ? [{ tag: maglevTableTag(v, true), backends: ids.filter((_, j) => v.backends[j].local), size }] : [];
    return [{ tag: maglevTableTag(v, false), backends: ids, size }, ...local];
  });
  const before = prefetchedTables();
  const tables = buildMaglevTables(jobs);
  endMaglevPrefetch();
  t.equal(prefetchedTables() - before, jobs.length, 'every table, the local-only ones too, came from the helper');
  t.ok(tables.every((x) => x instanceof MappedTable));
  const bad = jobs.findIndex((j, i) => !Buffer.from((tables[i] as MappedTable).toArray().buffer).equals(Buffer.from(buildMaglevTable(j.backends, j.size).buffer)));
  t.equal(bad, -1, 'each equal to the table built here for its ids');
});

t.test('a file the helper cannot take is left to this thread (which reports its errors)', async (t) => {
  for (const [name, body] of [['bad.json', '{"vips": [{"prefix": "198.18.100.1/32", "port": 99999}]}'], ['syntax.json', '{"vips": [']] as const) {
    const file = join(dir, name);
    writeFileSync(file, body);
    t.equal(takeConfigPreload(startConfigPreload(file)!), undefined, name);
    t.notOk(hasMaglevPrefetch(), `${name}: no prefetch`);
  }
  t.equal(takeConfigPreload(startConfigPreload(join(dir, 'missing.json'))!), undefined, 'a missing file');
});
