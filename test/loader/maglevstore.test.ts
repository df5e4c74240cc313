// The Maglev store as a restarted process finds it: its run allocator is built from the pinned refs,
// whatever the first operation is. A first operation that cleared a table once built the allocator
// after the ref was zeroed, so the run was both free and quarantined: later it was handed out while
// still quarantined, or given back twice ("overlaps a free run"), found by the Kubernetes end-to-end
// test (a restarted daemon whose first change was a scale to zero).
import t from 'tap';
import { MaglevStore } from '../../src/loader/maglevstore.js';
import { bpfSkipReason, testControl } from '../helpers/bpf.js';

const skip = bpfSkipReason();
if (skip) {
  t.test('maglev store across a restart', { skip }, async () => {});
} else {
  t.test('a restarted store whose first operation is a clear keeps the other tables\' words', async (t) => {
    const control = testControl(t, 'mgstore');
    const refFd = control.dp.maps.maglevRef.fd;
    const table = (v: number, n = 307) => Uint32Array.from({ length: n }, (_, i) => v * 1000 + i);
    let now = 0;
    const before = new MaglevStore(refFd, control.dp.maps.maglevStore, () => now);
    before.set([[1, table(1)], [2, table(2)]]);
    before.close();
    // The restart: a new store over the same pins.
    const after = new MaglevStore(refFd, control.dp.maps.maglevStore, () => now);
    after.clear(1);
    now += 10;
    after.set([[3, table(3)], [4, table(4)]]);
    t.same(after.get(2), table(2), 'VIP 2 untouched by the new tables');
    now += 5000; // the cleared run leaves its quarantine
    t.doesNotThrow(() => after.set([[5, table(5)], [6, table(6)], [7, table(7)]]), 'no run given back twice');
    for (const v of [2, 3, 4, 5, 6, 7]) t.same(after.get(v), table(v), `VIP ${v}'s table intact`);
    after.close();
  });
}
