// An apply whose batch of map writes fails half way (the new VIPs' backend slots and addresses
// written, their entries not): the rollback must see what the maps hold, not what the writer meant
// to write, and nothing may leak (backend slots owned by no VIP).
import t from 'tap';
import { parseConfig } from '../../src/config/validate.js';
import { Control } from '../../src/dataplane/control.js';
import { BACKEND_STATE } from '../../src/dataplane/vips.js';
import { bpfSkipReason, testControl } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const A = { prefix: '198.18.120.1', port: 80, target_port: 8080, backends: ['198.18.121.1', '198.18.121.2'] };
const B = { prefix: '198.18.120.2', port: 80, target_port: 8080, backends: ['198.18.122.1', '198.18.122.2', '198.18.122.3'] };

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('a batch of map writes failing half way', { skip: reason }, async () => {});
else {
  t.test('a batch of map writes failing half way: rolled back to what the maps hold, no slot leaked', async (t) => {
    const control = testControl(t, 'flushfail');
    const pinned = () => {
      const fresh = Control.open({ bpffs: control.pinDir.replace(/\/kpbpf$/, ''), load: false });
      try {
        return fresh.listVips().map((v) => [v.prefix, v.backends.filter((b) => b.state === 'active').map((b) => b.address).sort()]);
      } finally {
        fresh.close();
      }
    };
    const usedSlots = () => [...control.dp.maps.backends.entries()].filter(([id, b]) => id !== 0 && b.state !== BACKEND_STATE.free).length;
    control.apply(parseConfig({ conf: { buckets: 1024 }, vips: [A] }), { dryRun: false });

    process.env.KPBPF_INJECT = 'apply.flush=throw';
    try {
      t.throws(() => control.apply(parseConfig({ conf: { buckets: 1024 }, vips: [A, B] }), { dryRun: false }), /apply failed, running state restored: injected failure at apply.flush/);
    } finally {
      delete process.env.KPBPF_INJECT;
    }
    t.same(pinned(), [['198.18.120.1/32', ['198.18.121.1', '198.18.121.2']]], 'the maps hold the first config');
    t.same(control.listVips().map((v) => [v.prefix, v.backends.filter((b) => b.state === 'active').map((b) => b.address).sort()]), pinned(), 'and the writer sees what the maps hold');

    control.apply(parseConfig({ conf: { buckets: 1024 }, vips: [A, B] }), { dryRun: false });
    t.same(pinned(), [['198.18.120.1/32', ['198.18.121.1', '198.18.121.2']], ['198.18.120.2/32', ['198.18.122.1', '198.18.122.2', '198.18.122.3']]], 'the next apply makes the second config');
    t.equal(usedSlots(), 5, 'five backend slots in use: none left owned by no VIP');
  });
}
