// A takeover killed (SIGKILL) after each of its steps: a newer kpbpf's command loads its program over
// an older kpbpf's pins (src/loader/dataplane.ts), and dies after the maps it adds are pinned, after
// its program is pinned, or after the interfaces switched and before the counts are carried over.
// The next command finishes the takeover: the connection and VIP are there, the counts carried over
// once, the older pins gone, a program pinned.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Control } from '../../src/dataplane/control.js';
import { bpfSkipReason } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { ctRecord, FLOW, pinnedDataPlane } from '../helpers/pinned.js';
import { KPBPF } from '../helpers/e2e.js';
import { makeOlderPins, olderCounts } from '../helpers/older.js';

const POINTS = ['load.maps-pinned', 'load.program-pinned', 'load.switched'] as const;

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('a takeover killed at each step', { skip: reason }, async () => {});
else {
  for (const point of POINTS) {
    t.test(`killed after ${point}: the next command finishes the takeover`, async (t) => {
      const { bpffs, pinDir, control: first } = pinnedDataPlane(t, 'takeover');
      first.vips.add({ prefix: '198.18.10.1/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 7 });
      first.dp.maps.ct.update(FLOW, ctRecord({ backendId: 1, vipId: 1 }));
      first.close();
      makeOlderPins(pinDir);

      const kp = (args: string[], inject?: string) =>
        spawnSync(process.execPath, [KPBPF, '--bpffs', bpffs, ...args], { encoding: 'utf8', env: { ...process.env, ...(inject ? { KPBPF_INJECT: `${inject}=kill` } : {}) } });
      const killed = kp(['vip', 'add', '198.18.10.2/32', 'port', '80'], point);
      t.equal(killed.signal, 'SIGKILL', `the takeover died after ${point} (${killed.stderr.trim()})`);
      t.ok(existsSync(join(pinDir, 'prog')), 'a program is pinned all the while');

      const next = kp(['vip', 'add', '198.18.10.2/32', 'port', '80']);
      t.equal(next.status, 0, next.stderr);
      t.match(next.stderr, /took over a data plane an older kpbpf loaded, connections kept; kp_vip_stats: the counts of 1 id carried into kp_vip_stats_v2/, 'it says what it carried over');
      const c2 = Control.open({ bpffs: bpffs, load: false });
      try {
        t.match(c2.dp.maps.ct.lookup(FLOW), { backendId: 1, vipId: 1 }, 'the connection is in the table');
        t.same(c2.listVips().map((v) => v.prefix), ['198.18.10.1/32', '198.18.10.2/32'], 'the VIP, and the one the command added');
        t.same(c2.dp.maps.vipStats.lookup(1).map((s) => [s.firstPkts, s.bytes]), olderCounts().vip1, "VIP 1's counts carried over once");
        t.same(c2.dp.maps.beStats.lookup(2).map((s) => [s.packets, s.bytes]), olderCounts().backend2, "backend 2's too");
      } finally {
        c2.close();
      }
      for (const n of ['kp_vip_stats', 'kp_be_stats', 'prog_new']) t.notOk(existsSync(join(pinDir, n)), `no ${n} pin left`);
    });
  }
}
