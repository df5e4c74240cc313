// The daemon's two read buffers: the bytes it keeps (the file applied last) stay as they were while
// the next reads go to the other buffer, whatever the file's size does.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBuffers } from '../../src/daemon/filebuf.js';

const dir = mkdtempSync(join(tmpdir(), 'kpbpf-filebuf-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'c.json');

t.test('kept bytes survive later reads; unkept ones are overwritten', async (t) => {
  const f = new FileBuffers();
  writeFileSync(file, 'first version');
  const first = f.read(file);
  t.equal(first.toString(), 'first version');
  f.keep();
  writeFileSync(file, 'second, not kept');
  t.equal(f.read(file).toString(), 'second, not kept');
  writeFileSync(file, 'third version!!');
  const third = f.read(file);
  t.equal(third.toString(), 'third version!!');
  t.equal(first.toString(), 'first version', 'the kept bytes are unchanged by two reads since');
  f.keep();
  writeFileSync(file, 'x'.repeat(100000)); // larger than either buffer
  t.equal(f.read(file).length, 100000);
  t.equal(third.toString(), 'third version!!', 'and by a read that needed a larger buffer');
  writeFileSync(file, '');
  t.equal(f.read(file).length, 0, 'an empty file');
});

t.test('a file that cannot be read is a config error naming it', async (t) => {
  t.throws(() => new FileBuffers().read(join(dir, 'missing.json')), { code: 'KP_ERR_CONFIG', message: /cannot read config file .*missing\.json: ENOENT/ });
});
