// Loading, pinning, pin reuse, verifier errors, Maglev publishing and test runs (needs root).
import t from 'tap';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, DEFAULT_OBJECT, ensureBpffs, loadDataplane, openPinned, pinRoot, testRun } from '../../src/loader/index.js';
import { KP_INTERNAL_MAPS, KP_MAP_NAMES } from '../../src/maps/kpmaps.js';
import { buildFixture, notRootReason, privateBpffs, REAL_OBJECT, removeFixture } from './fixtures/helpers.js';

const XDP_PASS = 2;
const XDP_TX = 3;
const KP_STAT_PASS_NOT_IP = 0;
const skip = notRootReason() ?? false;

const arp = () => {
  const p = Buffer.alloc(60);
  p.writeUInt16BE(0x0806, 12);
  return p;
};

t.test('pinRoot and dots', async (t) => {
  const saved = process.env.KPBPF_BPFFS;
  t.teardown(() => (saved === undefined ? delete process.env.KPBPF_BPFFS : (process.env.KPBPF_BPFFS = saved)));
  delete process.env.KPBPF_BPFFS;
  t.equal(pinRoot(), '/sys/fs/bpf/kpbpf');
  process.env.KPBPF_BPFFS = '/run/kpbpf-env';
  t.equal(pinRoot(), '/run/kpbpf-env/kpbpf', 'env var');
  t.equal(pinRoot({ bpffs: '/run/x/' }), '/run/x/kpbpf', 'flag wins, trailing slash dropped');
  t.throws(() => pinRoot({ bpffs: '/run/k.p' }), { code: 'KP_ERR_ARG', message: /'\/run\/k\.p' contains '\.'/ });
  t.throws(() => ensureBpffs('/run/a.b'), { code: 'KP_ERR_ARG' });
  t.equal(DEFAULT_OBJECT, REAL_OBJECT, 'default object is <repo>/build/kp.bpf.o');
});

t.test('fixture object: load, test run, Maglev publish and clear', { skip }, async (t) => {
  const obj = buildFixture('mini');
  t.teardown(() => removeFixture(obj));
  const dp = loadDataplane({ objectPath: obj, buckets: 256 });
  t.teardown(() => dp.close());
  t.equal(dp.maps.ct.info.maxEntries, 512, 'buckets sets kp_ct max_entries (two entries per connection)');
  t.equal(dp.pinDir, undefined);

  const r = testRun(dp.progFd, arp(), { repeat: 5 });
  t.equal(r.retval, XDP_PASS, 'no table: XDP_PASS');
  t.same(r.data, arp(), 'packet untouched');
  t.ok(r.durationNs >= 0);
  t.equal(dp.maps.stats.sum(KP_STAT_PASS_NOT_IP, (a, b) => a + b), 5n, 'the program ran 5 times');

  t.equal(dp.getMaglevTable(1), undefined, 'no table yet');
  dp.setMaglevTable(1, [42, 7, 7, 7, 7, 7, 7]);
  t.same([...dp.getMaglevTable(1)!], [42, 7, 7, 7, 7, 7, 7]);
  let out = testRun(dp.progFd, arp());
  t.equal(out.retval, XDP_TX, 'the program sees the published table');
  t.equal(out.data.readUInt32LE(0), 42, 'slot 0 of the table');

  const slotOf = (slot: number) => {
    const p = arp();
    p.writeUInt16LE(slot, 4);
    return testRun(dp.progFd, p).data.readUInt32LE(0);
  };
  t.same([0, 1, 6].map(slotOf), [42, 7, 7], 'every slot as written (an array map keeps 8 bytes per value)');

  // The same size again: a new run of the store, switched whole by one store of the ref.
  dp.setMaglevTable(1, [42, 7, 9, 7, 7, 7, 11]);
  t.same([0, 1, 2, 6].map(slotOf), [42, 7, 9, 11], 'the program sees the new table');
  t.same([7, 8].map(slotOf), [42, 7], 'slot = hash % the published length');

  // Another size, then more tables than the first store holds: the store grows (a larger copy
  // swapped in) and every table stays where the program finds it.
  const big = new Uint32Array(1021).map((_, i) => i + 1000);
  dp.setMaglevTable(1, big);
  t.same(dp.getMaglevTable(1), big);
  out = testRun(dp.progFd, arp());
  t.equal(out.data.readUInt32LE(0), 1000);
  t.same([511, 1020].map(slotOf), [1511, 2020], 'its last slots too');
  const firstStore = dp.maps.maglevStore.lookup(0);
  const many = Array.from({ length: 80 }, (_, i) => [i + 2, new Uint32Array(1021).fill(i + 2)] as const);
  dp.setMaglevTables(many);
  t.not(dp.maps.maglevStore.lookup(0), firstStore, 'a larger store swapped in');
  t.same([0, 511, 1020].map(slotOf), [1000, 1511, 2020], "VIP 1's table moved with the store");
  t.same(dp.getMaglevTable(81)!.slice(0, 3), new Uint32Array([81, 81, 81]));

  // The kernel refuses a test packet shorter than an Ethernet header.
  t.throws(() => testRun(dp.progFd, Buffer.alloc(2)), { code: 'KP_ERR_BPF', errnoName: 'EINVAL' });

  dp.clearMaglevTable(1);
  t.equal(dp.getMaglevTable(1), undefined);
  t.equal(testRun(dp.progFd, arp()).retval, XDP_PASS);
  t.throws(() => dp.setMaglevTable(2, []), { code: 'KP_ERR_ARG' });
});

t.test('pins: maps and program pinned, reused on reload, found by openPinned', { skip }, async (t) => {
  const obj = buildFixture('mini');
  const fs = privateBpffs('loader');
  t.teardown(() => {
    fs.umount();
    removeFixture(obj);
  });
  const pinDir = join(fs.dir, 'kpbpf');
  t.throws(() => openPinned(pinDir), { code: 'KP_ERR_STATE', message: /not loaded.*run kpbpf attach first/ });

  const dp = loadDataplane({ objectPath: obj, buckets: 128, pinDir });
  for (const n of [...KP_MAP_NAMES, 'prog']) t.ok(existsSync(join(pinDir, n)), `${n} pinned`);
  const key = { addr: '198.18.0.10', port: 80, proto: 6 };
  dp.maps.vips.update(key, { id: 1, tableLen: 7, flags: 0, targetPort: 8080 });
  dp.setMaglevTable(1, [5, 5, 5, 5, 5, 5, 5]);
  dp.close();

  const again = loadDataplane({ objectPath: obj, buckets: 128, pinDir });
  t.same(again.maps.vips.lookup(key), { id: 1, tableLen: 7, flags: 0, targetPort: 8080, nodePort: 0 }, 'reload reused the pinned map');
  t.equal(testRun(again.progFd, arp()).data.readUInt32LE(0), 5, 'the reloaded program uses the pinned Maglev table');
  again.close();

  const later = openPinned(pinDir);
  t.teardown(() => later.close());
  t.equal(later.pinDir, pinDir);
  t.same(later.maps.vips.lookup(key)?.targetPort, 8080);
  t.same([...later.getMaglevTable(1)!], [5, 5, 5, 5, 5, 5, 5]);
  // Another process publishes: it finds the words in use from the refs and leaves VIP 1's alone.
  later.setMaglevTable(2, [6, 6, 6, 6, 6, 6, 6]);
  t.same([...later.getMaglevTable(1)!], [5, 5, 5, 5, 5, 5, 5], "VIP 1's table untouched");
  t.same([...later.getMaglevTable(2)!], [6, 6, 6, 6, 6, 6, 6]);
  t.equal(testRun(later.progFd, arp()).retval, XDP_TX, 'the pinned program is usable');

  t.throws(() => loadDataplane({ objectPath: obj, buckets: 4096, pinDir }), {
    code: 'KP_ERR_STATE',
    message: /kp_ct is incompatible.*max_entries: pinned 256, object 8192/,
  });

  mkdirSync(join(fs.dir, 'empty'));
  t.throws(() => openPinned(join(fs.dir, 'empty')), { code: 'KP_ERR_STATE', message: /run kpbpf attach first/ });
  const plain = `/run/kpbpf-test-plain-${process.pid}`; // created by the loader, on tmpfs
  t.teardown(() => rmSync(plain, { recursive: true, force: true }));
  t.throws(() => loadDataplane({ objectPath: obj, pinDir: plain }), { code: 'KP_ERR_STATE', message: /not on a bpffs/ });
});

t.test('a rejected program raises KP_ERR_VERIFIER with the log', { skip }, async (t) => {
  const bad = buildFixture('bad');
  t.teardown(() => removeFixture(bad));
  const obj = BpfObject.open(bad);
  t.teardown(() => obj.close());
  try {
    obj.load();
    t.fail('the verifier accepted an unchecked packet read');
  } catch (e) {
    const err = e as { code: string; log?: string; message: string; errnoName?: string };
    t.equal(err.code, 'KP_ERR_VERIFIER');
    t.match(err.log, /invalid access to packet/, 'the log has the verifier reason');
    t.match(err.message, /rejected the BPF program/);
    t.equal(err.errnoName, 'EACCES');
  }
  t.throws(() => BpfObject.open('/nonexistent/kp.bpf.o'), { code: 'KP_ERR_STATE', message: /not found/ });
});

const noReal = skip || (existsSync(REAL_OBJECT) ? false : `${REAL_OBJECT} is missing: run npm run build:bpf first`);
t.test('the real data plane loads and passes non-IP traffic', { skip: noReal }, async (t) => {
  const dp = loadDataplane({ buckets: 1024 });
  t.teardown(() => dp.close());
  t.equal(dp.maps.ct.info.maxEntries, 2048);
  const r = testRun(dp.progFd, arp(), { repeat: 3, ingressIfindex: 1 });
  t.equal(r.retval, XDP_PASS);
  t.same(r.data, arp(), 'not one byte changed');
  t.equal(dp.maps.stats.sum(KP_STAT_PASS_NOT_IP, (a, b) => a + b), 3n, 'counted as PASS_NOT_IP once per run');
});

t.test('every map of kp.bpf.o is named in KP_MAP_NAMES or KP_INTERNAL_MAPS (detach --purge removes those pins)', { skip: noReal }, async (t) => {
  const obj = BpfObject.open(REAL_OBJECT);
  t.teardown(() => obj.close());
  const known = new Set<string>([...KP_MAP_NAMES, ...KP_INTERNAL_MAPS]);
  const names = obj.maps().map((m) => m.name).filter((n) => !n.startsWith('.')); // .rodata, .kconfig: libbpf's own
  t.same(names.filter((n) => !known.has(n)), [], 'no unlisted map');
});

t.test('maps first: pinned without a program, filled, then the program loads over them and is taken', { skip: noReal }, async (t) => {
  const { Control } = await import('../../src/dataplane/control.js');
  const { parseConfig } = await import('../../src/config/validate.js');
  const { pinnedLayout } = await import('../../src/loader/dataplane.js');
  const { LAYOUT_VERSION } = await import('../../src/maps/codecs.js');
  const fs = privateBpffs('mapsfirst');
  t.teardown(() => fs.umount());
  const bpffs = fs.dir;
  const pinDir = pinRoot({ bpffs });

  t.equal(Control.createMaps({ bpffs, buckets: 1024 }), 1024, 'a new table has the buckets asked for');
  for (const n of KP_MAP_NAMES) t.ok(existsSync(join(pinDir, n)), `${n} pinned`);
  t.notOk(existsSync(join(pinDir, 'prog')), 'no program yet');
  t.equal(pinnedLayout(pinDir), LAYOUT_VERSION, "kp_layout holds this kpbpf's layout version");
  t.throws(() => Control.open({ bpffs, load: false }), { code: 'KP_ERR_STATE', message: /not loaded/ }, 'an ordinary open still wants the program');

  const c = Control.open({ bpffs, load: false, programPending: true });
  t.teardown(() => c.close());
  t.ok(c.conf().hashSeed !== 0 || c.conf().timeouts.tcp_established > 0, 'the first config was written (timeouts, hash seed)');
  c.apply(parseConfig({ conf: { buckets: 1024 }, vips: [{ prefix: '198.18.0.10/32', port: 80, target_port: 8080, backends: ['198.18.1.1', '198.18.1.2'] }] }), { dryRun: false });
  t.throws(() => c.attach(['lo'], { mode: 'generic', redirect: false }), { code: 'KP_ERR_STATE', message: /still being loaded/ });

  t.equal(Control.createMaps({ bpffs, buckets: 4096 }), 1024, 'pinned maps are kept, the table with its size');
  const loader = Control.open({ bpffs, load: true, buckets: 1024, reload: false, upgrade: true });
  loader.close();
  c.adoptProgram();
  t.equal(testRun(c.dp.progFd, arp()).retval, XDP_PASS, 'the program loaded over the pins is taken');
  const v = Control.open({ bpffs, load: false });
  t.teardown(() => v.close());
  t.same(v.listVips().map((x) => [x.prefix, x.backends.length]), [['198.18.0.10/32', 2]], 'what was written before the program is there after it');
});
