// Pins an older kpbpf made: it kept per-VIP and per-backend counters in per-CPU arrays
// (kp_vip_stats, kp_be_stats), this one in arrays sliced per CPU (kp_vip_stats_v2, kp_be_stats_v2).
// A command that may write takes such a data plane over with this kpbpf's program, keeping its
// connections and config; a reader is told what to run. The older layout is made here from this
// object's pins: the new arrays' pins are replaced by per-CPU arrays under the old names.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Control } from '../../src/dataplane/control.js';
import { makeOlderPins, olderCounts } from '../helpers/older.js';
import { bpfSkipReason } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { ctRecord, FLOW, pinnedDataPlane } from '../helpers/pinned.js';

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('pins of an older kpbpf taken over', { skip: reason }, async () => {});
else {
  t.test('pins of an older kpbpf: a reader is told, a writer takes them over and keeps the connections', async (t) => {
    const { bpffs, pinDir, control: first } = pinnedDataPlane(t, 'retired');
    first.vips.add({ prefix: '198.18.10.1/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
    const ct = first.dp.maps.ct.lookup(FLOW) ?? undefined;
    t.equal(ct, undefined);
    first.dp.maps.ct.update(FLOW, ctRecord({ backendId: 1, vipId: 1 }));
    first.close();
    makeOlderPins(pinDir);

    t.throws(() => Control.open({ bpffs: bpffs, load: false }), /loaded by an older kpbpf \(it has kp_vip_stats, kp_be_stats, not kp_vip_stats_v2, kp_be_stats_v2\): kpbpf attach, kpbpf apply or kpbpf run takes it over/, 'a reader is told what takes it over');

    const taken = Control.open({ bpffs: bpffs, load: true, write: true });
    try {
      t.match(taken.dp.maps.ct.lookup(FLOW), { backendId: 1, vipId: 1 }, 'the connection is still in the table');
      t.equal(taken.vips.list().length, 1, 'and the VIP');
      t.equal(taken.conf().buckets, 1024, 'the table kept its size');
      t.same(taken.dp.maps.vipStats.lookup(1).map((s) => [s.firstPkts, s.bytes]), olderCounts().vip1, "VIP 1's counts carried over, CPU by CPU");
      t.same(taken.dp.maps.beStats.lookup(2).map((s) => [s.packets, s.bytes]), olderCounts().backend2, "backend 2's too");
      t.same(taken.dp.maps.beStats.lookup(3).map((s) => s.packets), taken.dp.maps.beStats.lookup(3).map(() => 0n), 'an id without counts stays zero');
      t.same(taken.dp.migrated, ['kp_vip_stats: the counts of 1 id carried into kp_vip_stats_v2', 'kp_be_stats: the counts of 1 id carried into kp_be_stats_v2'], 'and it says what it carried over');
    } finally {
      taken.close();
    }
    for (const n of ['kp_vip_stats', 'kp_be_stats']) t.notOk(existsSync(join(pinDir, n)), `${n}'s pin is gone`);
    for (const n of ['kp_vip_stats_v2', 'kp_be_stats_v2']) t.ok(existsSync(join(pinDir, n)), `${n} is pinned`);
    const reader = Control.open({ bpffs: bpffs, load: false });
    reader.close();
    t.pass('a reader opens it again');
  });
}

