// A writer killed in the middle of an apply (SIGKILL at named points, KPBPF_INJECT): the next apply
// converges the data plane to its config. The case a diff cannot see: a backend written to the maps
// whose VIP's Maglev table was not published yet; the VIPs and backends then equal the config while
// the table lacks the backend, and it stayed so for good.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Control, KP_CONF_F_TABLES_PENDING } from '../../src/dataplane/control.js';
import { BACKEND_STATE } from '../../src/dataplane/vips.js';
import { KPBPF } from '../helpers/e2e.js';
import { bpfSkipReason } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { privateBpffs } from '../loader/fixtures/helpers.js';

t.test('the flag is the header\'s', async (t) => {
  const h = readFileSync(new URL('../../bpf/kp_shared.h', import.meta.url), 'utf8');
  t.equal(Number(/#define KP_CONF_F_TABLES_PENDING (0x[0-9a-f]+)/.exec(h)?.[1]), KP_CONF_F_TABLES_PENDING);
});

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('a writer killed mid-apply', { skip: reason }, async () => {});
else run();

function run() {
  const fs = privateBpffs('crash');
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-crash-'));
  t.teardown(() => {
    spawnSync(process.execPath, [KPBPF, '--bpffs', fs.dir, 'detach', '--purge']);
    fs.umount();
    rmSync(dir, { recursive: true, force: true });
  });
  const VIP = '198.18.100.70/32';
  const apply = (backends: string[], inject?: string) => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ conf: { buckets: 1024 }, vips: [{ prefix: VIP, port: 80, target_port: 8080, backends }] }));
    return spawnSync(process.execPath, [KPBPF, '--bpffs', fs.dir, 'apply', '-f', file], { encoding: 'utf8', env: { ...process.env, ...(inject ? { KPBPF_INJECT: inject } : {}) } });
  };
  /** The VIP's active backends' ids, and the ids its published table holds. */
  const look = () => {
    const c = Control.open({ bpffs: fs.dir, load: false });
    try {
      const v = c.listVips({ slots: true })[0];
      const active = v.backends.filter((b) => b.state === 'active');
      const table = [...(c.dp.getMaglevTable(v.id) ?? [])];
      return { addrs: active.map((b) => b.address).sort(), ids: active.map((b) => b.id).sort((a, b) => a - b), inTable: [...new Set(table)].sort((a, b) => a - b), pending: c.tablesPending() };
    } finally {
      c.close();
    }
  };

  t.test('killed before its tables are published: the next apply publishes them', async (t) => {
    t.equal(apply(['198.18.1.2', '198.18.2.2']).status, 0);
    const killed = apply(['198.18.1.2', '198.18.2.2', '198.18.3.2'], 'apply.before-publish=kill');
    t.equal(killed.signal, 'SIGKILL', 'the writer died at the point');
    const torn = look();
    t.same(torn.addrs, ['198.18.1.2', '198.18.2.2', '198.18.3.2'], 'the new backend is in the maps');
    t.equal(torn.inTable.length, 2, "and not in the VIP's table");
    t.ok(torn.pending, 'the maps say an apply did not finish');
    const again = apply(['198.18.1.2', '198.18.2.2', '198.18.3.2']);
    t.equal(again.status, 0);
    t.match(again.stderr, /ended before it published its Maglev tables: all 1 VIPs' tables published again/);
    const healed = look();
    t.same(healed.inTable, healed.ids, 'the table holds exactly the active backends');
    t.notOk(healed.pending);
  });

  t.test('killed before the entry of a VIP it adds is written: no backend slot is left owned by no VIP', async (t) => {
    // The new VIP's backend slots are written at once (through the mapping), its entry with the
    // batch: killed in between, the slots name a VIP id that no entry has.
    const second = (inject?: string) => {
      const file = join(dir, 'c2.json');
      writeFileSync(file, JSON.stringify({ conf: { buckets: 1024 }, vips: [
        { prefix: VIP, port: 80, target_port: 8080, backends: ['198.18.1.2', '198.18.2.2', '198.18.3.2'] },
        { prefix: '198.18.100.71/32', port: 80, target_port: 8080, backends: ['198.18.5.2', '198.18.6.2'] },
      ] }));
      return spawnSync(process.execPath, [KPBPF, '--bpffs', fs.dir, 'apply', '-f', file], { encoding: 'utf8', env: { ...process.env, ...(inject ? { KPBPF_INJECT: inject } : {}) } });
    };
    const used = () => {
      const c = Control.open({ bpffs: fs.dir, load: false });
      try {
        return [...c.dp.maps.backends.entries()].filter(([id, b]) => id !== 0 && b.state !== BACKEND_STATE.free).length;
      } finally {
        c.close();
      }
    };
    t.equal(second(undefined).status, 0);
    t.equal(apply(['198.18.1.2', '198.18.2.2', '198.18.3.2']).status, 0, 'back to one VIP');
    const before = used();
    t.equal(second('apply.flush=kill').signal, 'SIGKILL', 'killed between its slots and its entry');
    t.equal(apply(['198.18.1.2', '198.18.2.2', '198.18.3.2']).status, 0, 'the next apply');
    t.equal(used(), before, 'the slots the killed apply took are free again');
    t.equal(second(undefined).status, 0);
    t.equal(used(), before + 2, 'and the VIP takes two when it comes');
  });

  t.test('killed as its writes begin: the next apply makes them and publishes', async (t) => {
    const killed = apply(['198.18.1.2', '198.18.4.2'], 'apply.after-writes-begin=kill');
    t.equal(killed.signal, 'SIGKILL');
    t.ok(look().pending);
    t.equal(apply(['198.18.1.2', '198.18.4.2']).status, 0);
    const s = look();
    t.same(s.addrs, ['198.18.1.2', '198.18.4.2']);
    t.same(s.inTable, s.ids);
    t.notOk(s.pending);
  });
}
