// A resize cut short before its load (kp_ct set aside as kp_ct_old, nothing else moved), met by the
// daemon's first step, which makes the maps on a worker (Control.createMaps): it puts the old table
// back, connections and all, instead of making an empty one beside it.
import t from 'tap';
import { existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Control } from '../../src/dataplane/control.js';
import { bpfSkipReason } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { ctRecord, FLOW, pinnedDataPlane } from '../helpers/pinned.js';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('a resize cut short, met by createMaps', { skip: reason }, async () => {});
else {
  t.test('a resize cut short, met by createMaps: the old table is back with its connections', async (t) => {
    const { bpffs, pinDir, control: first } = pinnedDataPlane(t, 'resize');
    first.dp.maps.ct.update(FLOW, ctRecord({ backendId: 3, vipId: 1 }));
    first.close();
    renameSync(join(pinDir, 'kp_ct'), join(pinDir, 'kp_ct_old')); // the resize's first step, then a crash

    t.equal(Control.createMaps({ bpffs: bpffs, buckets: 4096 }), 1024, 'the table keeps its size');
    t.notOk(existsSync(join(pinDir, 'kp_ct_old')), 'kp_ct_old is gone');
    const c2 = Control.open({ bpffs: bpffs, load: false });
    try {
      t.match(c2.dp.maps.ct.lookup(FLOW), { backendId: 3, vipId: 1 }, 'the connection is in the table');
    } finally {
      c2.close();
    }
  });
}
