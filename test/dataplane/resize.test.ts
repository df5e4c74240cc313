// A resize cut short before its load (kp_ct set aside as kp_ct_old, nothing else moved), met by the
// daemon's first step, which makes the maps on a worker (Control.createMaps): it puts the old table
// back, connections and all, instead of making an empty one beside it.
import t from 'tap';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Control } from '../../src/dataplane/control.js';
import { pinRoot } from '../../src/loader/index.js';
import * as c from '../../src/maps/codecs.js';
import { bpfSkipReason } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { privateBpffs } from '../loader/fixtures/helpers.js';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('a resize cut short, met by createMaps', { skip: reason }, async () => {});
else {
  t.test('a resize cut short, met by createMaps: the old table is back with its connections', async (t) => {
    const fs = privateBpffs('resize');
    t.teardown(() => {
      try {
        Control.open({ bpffs: fs.dir, load: false, write: true }).purge();
      } catch {
        /* nothing pinned */
      }
      fs.umount();
    });
    const pinDir = pinRoot({ bpffs: fs.dir });
    const flow: c.FlowKey = { saddr: '198.18.0.10', daddr: '198.18.10.1', sport: 40000, dport: 80, proto: 6 };
    const first = Control.open({ bpffs: fs.dir, load: true, write: true, buckets: 1024 });
    first.dp.maps.ct.update(flow, { ...c.ct.decode(Buffer.alloc(c.ct.size)), backendId: 3, vipId: 1 });
    first.close();
    renameSync(join(pinDir, 'kp_ct'), join(pinDir, 'kp_ct_old')); // the resize's first step, then a crash

    t.equal(Control.createMaps({ bpffs: fs.dir, buckets: 4096 }), 1024, 'the table keeps its size');
    t.notOk(existsSync(join(pinDir, 'kp_ct_old')), 'kp_ct_old is gone');
    const c2 = Control.open({ bpffs: fs.dir, load: false });
    try {
      t.match(c2.dp.maps.ct.lookup(flow), { backendId: 3, vipId: 1 }, 'the connection is in the table');
    } finally {
      c2.close();
    }
  });
}
