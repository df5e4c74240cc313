// The CLI against a live (loaded, unattached) data plane in a private bpffs: every command's effect is
// read back from the maps. Needs root and build/kp.bpf.o.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { main } from '../../src/cli/main.js';
import { Control } from '../../src/dataplane/control.js';
import { lockPath, lockWriter } from '../../src/dataplane/lock.js';
import { VipTable } from '../../src/dataplane/vips.js';
import { DEFAULT_OBJECT, testRun } from '../../src/loader/index.js';
import { buildPacket, parsePacket } from '../helpers/packet.js';
import { lb } from '../../src/sys/libbpf.js';
import { BpfMap } from '../../src/maps/map.js';
import { LAYOUT_VERSION, MASQ_V4, MASQ_V6, u32 } from '../../src/maps/codecs.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { KPBPF } from '../helpers/e2e.js';

const skip = skipUnlessCi(process.getuid?.() !== 0 ? 'needs root (bpffs, BPF maps)' : !existsSync(DEFAULT_OBJECT) ? `${DEFAULT_OBJECT} missing: run npm run build` : undefined);

if (skip) t.test('CLI against a live data plane', { skip }, async () => {});
else run();

function run() {
  const bpffs = `/run/kpbpf-clitest-${randomBytes(3).toString('hex')}`;
  const tmp = `/tmp/kpbpf-clitest-${randomBytes(3).toString('hex')}`;
  mkdirSync(bpffs, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  t.teardown(() => {
    try {
      execFileSync('umount', [bpffs]);
    } catch {
      // not mounted
    }
    rmdirSync(bpffs);
    rmSync(tmp, { recursive: true, force: true });
  });

  async function kp(...argv: string[]) {
    let out = '';
    let err = '';
    const code = await main(['--bpffs', bpffs, ...argv], { out: (s) => (out += s), err: (s) => (err += s) });
    return { code, out, err };
  }
  async function json(...argv: string[]) {
    const r = await kp('--json', ...argv);
    if (r.code !== 0) throw new Error(`kpbpf ${argv.join(' ')}: ${r.err}`);
    return JSON.parse(r.out);
  }
  const withControl = <T>(f: (c: Control) => T): T => {
    const c = Control.open({ bpffs, load: false });
    try {
      return f(c);
    } finally {
      c.close();
    }
  };

  t.test('nothing loaded yet: a read says so and exits 1, a dry run loads nothing', async (t) => {
    const r = await kp('show', 'vips');
    t.equal(r.code, 1);
    t.match(r.err, /not loaded/);
    const file = `${tmp}/first.json`;
    writeFileSync(file, JSON.stringify({ vips: [{ prefix: '198.18.100.50/32', port: 80, backends: ['198.18.1.2'] }] }));
    const dry = await json('apply', '-f', file, '--dry-run');
    t.same(dry.ops, ['vip add 198.18.100.50/32 tcp port 80 target 80 new_len auto', 'backend add 198.18.100.50/32 tcp port 80 198.18.1.2 weight 1']);
    t.notOk(existsSync(`${bpffs}/kpbpf/prog`), 'the dry run loaded nothing');
  });

  t.test('vip add loads the data plane; backends get Maglev slots by weight', async (t) => {
    const v = await json('vip', 'add', '198.18.100.10/32', 'protocol', 'tcp', 'port', '80', 'target', '8080', 'new_len', '1021');
    t.match(v, { id: 1, prefix: '198.18.100.10/32', protocol: 'tcp', port: 80, targetPort: 8080, newLen: 1021 });
    await json('backend', 'add', '198.18.100.10/32', '198.18.1.2');
    await json('backend', 'add', '198.18.100.10/32', 'weight', '2', '198.18.2.2');
    const [vip] = await json('show', 'backends');
    const slots = vip.backends.map((b: { slots: number }) => b.slots);
    t.equal(slots[0] + slots[1], 1021, 'every slot of the table is filled');
    t.ok(Math.abs(slots[1] / slots[0] - 2) < 0.05, `weight 2 gets twice the slots (${slots.join(' / ')})`);
    t.same(vip.backends.map((b: { port: number }) => b.port), [8080, 8080], 'backends take the target port');
  });

  t.test('vip add on an existing VIP changes new_len and target in place', async (t) => {
    await json('vip', 'add', '198.18.100.10/32', 'port', '80', 'target', '8081', 'new_len', '2039');
    const vips = await json('show', 'backends');
    t.equal(vips.length, 1, 'still one VIP');
    t.equal(vips[0].newLen, 2039);
    t.equal(vips[0].backends.reduce((a: number, b: { slots: number }) => a + b.slots, 0), 2039, 'the table was rebuilt at the new size');
    t.same(vips[0].backends.map((b: { port: number }) => b.port), [8081, 8081]);
  });

  t.test('new_len left out: a prime >= 100 x backends, grown and shrunk with them, said by show', async (t) => {
    const V = '198.18.100.95/32';
    t.teardown(() => kp('vip', 'del', V, 'flush'));
    t.match(await json('vip', 'add', V, 'port', '80'), { newLen: 101, newLenAuto: true });
    const table = async () => {
      const [v] = (await json('show', 'backends')).filter((x: { prefix: string }) => x.prefix === V);
      return { len: v.newLen, slots: v.backends.reduce((a: number, b: { slots: number }) => a + b.slots, 0), auto: v.newLenAuto };
    };
    const be = (i: number) => `198.18.30.${i}`;
    await json('backend', 'add', V, be(1), be(2), be(3));
    t.same(await table(), { len: 307, slots: 307, auto: true }, '3 backends: 307, every slot filled');
    await json('backend', 'add', V, ...[4, 5, 6, 7, 8, 9, 10].map(be));
    t.same(await table(), { len: 1009, slots: 1009, auto: true }, '10 backends: 1009');
    await json('backend', 'del', V, be(10), be(9));
    t.equal((await table()).len, 1009, '8 backends still fit a table of 1009 (no resize back and forth)');
    await json('backend', 'del', V, 'flush', ...[3, 4, 5, 6, 7, 8].map(be));
    t.same(await table(), { len: 211, slots: 211, auto: true }, '2 backends: shrunk to 211');
    t.match((await kp('show', 'vips')).out, /198\.18\.100\.95\/32 tcp port 80 target 80 new_len 211 \(auto\)/, 'show says so');
    await json('vip', 'add', V, 'port', '80', 'new_len', '13');
    t.same(await table(), { len: 13, slots: 13, auto: undefined }, 'a given size is kept');
  });

  t.test('a VIP prefix is stored in the LPM trie and counted for the data plane', async (t) => {
    await json('vip', 'add', '198.18.64.0/24', 'protocol', 'udp', 'port', '53');
    t.equal(withControl((c) => c.dp.maps.config.lookup(0)!.nVipPrefixes), 1);
    const del = await kp('vip', 'del', '198.18.64.0/24');
    t.equal(del.code, 0, del.err);
    t.equal(withControl((c) => c.dp.maps.config.lookup(0)!.nVipPrefixes), 0);
  });

  t.test('graceful removal: a backend with a live flow drains, without one it is freed', async (t) => {
    // A live connection on 198.18.1.2, as the data plane would have written its record.
    withControl((c) => {
      const b = c.listVips()[0].backends.find((x) => x.address === '198.18.1.2')!;
      c.dp.maps.ct.update(
        { saddr: '198.18.0.2', daddr: '198.18.100.10', sport: 40000, dport: 80, proto: 6 },
        { vipAddr: '::', lastSeenNs: process.hrtime.bigint(), backendId: b.id, backendGen: b.gen, vipId: 1, vipPort: 0, clientPort: 40000, state: 3, flags: 0 },
      );
    });
    const flows = await json('show', 'flows');
    t.match(flows, [{ client: '198.18.0.2:40000', vip: '198.18.100.10:80', backend: '198.18.1.2:8081', state: 'established', timeoutSeconds: 86400, stale: false }]);
    const r = await json('backend', 'del', '198.18.100.10/32', '198.18.1.2');
    t.match(r, [{ address: '198.18.1.2', state: 'draining', flushed: false }]);
    let [vip] = await json('show', 'backends');
    t.same(vip.backends.map((b: { address: string; state: string; slots: number }) => [b.address, b.state, b.slots]), [
      ['198.18.1.2', 'draining', 0],
      ['198.18.2.2', 'active', 2039],
    ]);
    // Once its connection is gone, the next change collects it.
    withControl((c) => c.dp.maps.ct.delete({ saddr: '198.18.0.2', daddr: '198.18.100.10', sport: 40000, dport: 80, proto: 6 }));
    await json('backend', 'add', '198.18.100.10/32', '198.18.3.2');
    await json('backend', 'del', '198.18.100.10/32', '198.18.3.2');
    [vip] = await json('show', 'backends');
    t.same(vip.backends.map((b: { address: string }) => b.address), ['198.18.2.2'], 'drained backends without flows are freed');
  });

  t.test("the seed's form: as VIP ... ADDRESS adds, pod VIP ... ADDRESS del flush removes", async (t) => {
    t.match(await json('as', '198.18.100.10/32', 'port', '80', '198.18.4.2', '198.18.5.2'), [{ address: '198.18.4.2' }, { address: '198.18.5.2' }]);
    t.match(await json('pod', '198.18.100.10/32', 'port', '80', '198.18.4.2', 'del'), [{ address: '198.18.4.2', state: 'draining', flushed: false }]);
    t.match(await json('as', '198.18.100.10/32', 'port', '80', '198.18.5.2', 'del', 'flush'), [{ address: '198.18.5.2', flushed: true }]);
    const [vip] = await json('show', 'backends');
    t.notOk(vip.backends.some((b: { address: string; state: string }) => b.address === '198.18.5.2'), 'the flushed one is gone');
  });

  t.test('flush frees at once and bumps the slot generation', async (t) => {
    const [before] = await json('show', 'backends');
    const gen = before.backends[0].gen;
    const r = await json('backend', 'del', '198.18.100.10/32', 'flush', '198.18.2.2');
    t.match(r, [{ address: '198.18.2.2', flushed: true }]);
    const [after] = await json('show', 'backends');
    t.same(after.backends, []);
    const slot = withControl((c) => c.dp.maps.backends.lookup(before.backends[0].id)!);
    t.equal(slot.state, 0, 'slot is free');
    t.equal(slot.gen, gen + 1, 'generation bumped: flows pinned to it re-select');
  });

  t.test('conf: timeouts and buckets (a reload that keeps VIPs, backends and connections)', async (t) => {
    await json('backend', 'add', '198.18.100.10/32', '198.18.4.2');
    t.match(await json('conf', 'timeout', '10'), { timeout: 10, timeouts: { udp: 10, tcp_established: 86400 }, buckets: 131072 });
    t.match(await json('conf', 'timeout', 'tcp_established', '7200', 'timeout', 'tcp_close', '5'), {
      timeouts: { udp: 10, tcp_established: 7200, tcp_close: 5, tcp_close_wait: 3600 },
    });
    const conn = { saddr: '198.18.0.3', daddr: '198.18.100.10', sport: 40001, dport: 80, proto: 6 };
    withControl((c) => {
      const b = c.listVips()[0].backends[0];
      c.dp.maps.ct.update(conn, { vipAddr: '::', lastSeenNs: process.hrtime.bigint(), backendId: b.id, backendGen: b.gen, vipId: 1, vipPort: 0, clientPort: 40001, state: 3, flags: 0 });
    });
    const vipsBefore = await json('show', 'backends');
    t.match(await json('conf', 'buckets', '2048'), { timeout: 10, buckets: 2048 });
    t.same(await json('show', 'backends'), vipsBefore, 'VIPs, backends and tables survive the reload');
    t.equal(withControl((c) => c.dp.maps.ct.info.maxEntries), 4096, 'two entries per connection');
    t.ok(withControl((c) => c.dp.maps.ct.lookup(conn)), 'the connection was copied into the new table');
    withControl((c) => c.dp.maps.ct.delete(conn));
  });

  t.test('conf nodeport_addresses and nodeport_range: kept with the pins, applied to node ports at once', async (t) => {
    // No address of this machine is in 198.18.0.0/15 (tests use that range in namespaces only).
    t.match(await json('conf', 'nodeport_addresses', '198.18.0.0/15'), { nodePortAddresses: ['198.18.0.0/15'], nodePortRange: '30000-32767' });
    const v = await json('vip', 'add', '198.18.100.40/32', 'port', '80', 'nodeport', '30100');
    t.same(v.nodeAddresses, [], 'no node address in the prefixes: the node port is served nowhere yet');
    const r = await kp('vip', 'add', '198.18.100.41/32', 'port', '80', 'nodeport', '29999');
    t.equal(r.code, 2);
    t.match(r.err, /node port 29999: outside the node port range 30000-32767/);
    const bad = await kp('conf', 'nodeport_range', '31000-31999');
    t.equal(bad.code, 1);
    t.match(bad.err, /nodeport_range 31000-31999: vip 198\.18\.100\.40\/32 tcp port 80 has node port 30100, outside it/);
    t.match(await json('conf', 'nodeport_range', '30000-30200'), { nodePortRange: '30000-30200' });
    const out = (await kp('show', 'conf')).out;
    t.match(out, /^nodeport_range 30000-30200$/m);
    t.match(out, /^nodeport_addresses 198\.18\.0\.0\/15$/m);
    await json('conf', 'nodeport_addresses', 'all', 'nodeport_range', '30000-32767');
    const all = (await json('show', 'vips')).find((x: { port: number; prefix: string }) => x.prefix === '198.18.100.40/32');
    t.ok(Array.isArray(all.nodeAddresses), 'all: served on whatever addresses this machine has');
    t.equal(withControl((c) => c.conf().nodePortAddresses.length), 0);
    await json('vip', 'del', '198.18.100.40/32');
  });

  t.test('conf hash_seed sets the flow-hash seed, and show conf prints it in the words conf takes', async (t) => {
    t.match(await json('conf', 'hash_seed', '3735928559'), { hashSeed: 3735928559 });
    t.equal(withControl((c) => c.dp.maps.config.lookup(0)!.hashSeed), 3735928559, 'kp_config.hash_seed written');
    const r = await kp('show', 'conf');
    t.match(r.out, /^hash_seed 3735928559$/m);
    t.match(r.out, /^buckets \d+$/m);
  });

  t.test('conf masquerade_address and masquerade_ports: written to kp_masq, shown in the words conf takes', async (t) => {
    t.match(await json('conf', 'masquerade_address', '198.18.0.77', 'masquerade_ports', '62000-63000'), { masqueradeAddress: '198.18.0.77', masqueradePorts: '62000-63000' });
    t.same(withControl((c) => c.dp.maps.masq.lookup(0)), { addr: '198.18.0.77', portMin: 62000, portMax: 63000 });
    const out = (await kp('show', 'conf')).out;
    t.match(out, /^masquerade_address 198\.18\.0\.77$/m);
    t.match(out, /^masquerade_ports 62000-63000$/m);
    t.match(await json('conf', 'masquerade_address', 'none', 'masquerade_ports', '1024-29999'), { masqueradeAddress: 'none', masqueradePorts: '1024-29999' });
    t.equal(withControl((c) => c.dp.maps.masq.lookup(0)!.addr), '', 'none: all zero, LoadBalancer and hairpin connections keep their client address');
  });

  t.test('conf masquerade_address6: written to kp_masq entry 1, the IPv4 entry and its port range kept', async (t) => {
    await json('conf', 'masquerade_address', '198.18.0.77', 'masquerade_ports', '62000-63000');
    t.match(await json('conf', 'masquerade_address6', '2001:DB8::77'), { masqueradeAddress: '198.18.0.77', masqueradeAddress6: '2001:db8::77', masqueradePorts: '62000-63000' });
    t.same(withControl((c) => c.dp.maps.masq.lookup(MASQ_V6)), { addr: '2001:db8::77', portMin: 0, portMax: 0 });
    t.same(withControl((c) => c.dp.maps.masq.lookup(MASQ_V4)), { addr: '198.18.0.77', portMin: 62000, portMax: 63000 });
    t.match((await kp('show', 'conf')).out, /^masquerade_address6 2001:db8::77$/m);
    const bad = await kp('conf', 'masquerade_address6', '198.18.0.5');
    t.equal(bad.code, 2);
    t.match(bad.err, /masquerade_address6: expected an IPv6 address or none, got the IPv4 address/);
    t.equal(withControl((c) => c.dp.maps.masq.lookup(MASQ_V6)!.addr), '2001:db8::77', 'a refused value changes nothing');
    t.match(await json('conf', 'masquerade_address6', 'none'), { masqueradeAddress6: 'none' });
    t.equal(withControl((c) => c.dp.maps.masq.lookup(MASQ_V6)!.addr), '');
    await json('conf', 'masquerade_address', 'none', 'masquerade_ports', '1024-29999');
  });

  const config = {
    conf: { buckets: 2048, timeout: 30 },
    vips: [
      { prefix: '198.18.100.10/32', protocol: 'tcp', port: 80, target_port: 8080, new_len: 1021, backends: ['198.18.1.2', { address: '198.18.2.2', weight: 3 }] },
      { prefix: '198.18.100.20', protocol: 'udp', port: 53, target_port: 5353, backends: ['198.18.1.2'] },
    ],
  };

  t.test('explain: the matching VIP, the connection record, and the new-connection pick the program makes', async (t) => {
    await json('vip', 'add', '198.18.100.90/32', 'protocol', 'udp', 'port', '53', 'target', '5353', 'new_len', '251');
    await json('backend', 'add', '198.18.100.90/32', 'protocol', 'udp', 'port', '53', '198.18.1.2', '198.18.2.2', '198.18.3.2');
    for (let i = 0; i < 12; i++) {
      const client = `198.18.0.2:${41000 + i}`;
      const e = await json('explain', client, '198.18.100.90:53', 'udp');
      t.match(e, { match: { vip: '198.18.100.90/32', via: 'exact', type: 'clusterip' }, newConnection: { tableLen: 251, table: 'all backends' } });
      t.notOk(e.connection, 'no record yet');
      // The program's own pick for that flow, on the loaded (unattached) data plane.
      const got = withControl((c) =>
        parsePacket(testRun(c.dp.progFd, buildPacket({ src: '198.18.0.2', dst: '198.18.100.90', proto: 'udp', sport: 41000 + i, dport: 53, payload: Buffer.from('q') })).data).dst,
      );
      t.equal(e.newConnection.backend.address, got, `${client}: explain predicts the backend the program picks`);
      const again = await json('explain', client, '198.18.100.90:53', 'udp');
      t.match(again.connection, { backend: `${got}:5353`, state: 'udp', live: true }, 'and then shows its record');
    }
    const none = await kp('explain', '198.18.0.2:41000', '198.18.100.91:53', 'udp');
    t.equal(none.code, 0);
    t.match(none.out, /no VIP matches 198\.18\.100\.91:53 udp/);
    const bad = await kp('explain', '198.18.0.2', '198.18.100.90:53');
    t.equal(bad.code, 2);
    t.match(bad.err, /client: expected ADDRESS:PORT/);
    await json('vip', 'del', '198.18.100.90/32', 'protocol', 'udp', 'port', '53');
    // The test's connections go too: later tests count the table.
    withControl((c) => {
      for (const [k, v] of [...c.dp.maps.ct.entries()]) if (k.daddr === '198.18.100.90' || v.vipAddr === '198.18.100.90') c.dp.maps.ct.delete(k);
    });
  });

  t.test('show during a connection-table resize waits for it instead of calling the pins incomplete', async (t) => {
    // What Control.reload does for a moment: kp_ct set aside while the new table loads.
    const pins = `${bpffs}/kpbpf`;
    execFileSync('mv', [`${pins}/kp_ct`, `${pins}/kp_ct_old`]);
    let restored = false;
    const restore = () => {
      if (!restored) execFileSync('mv', [`${pins}/kp_ct_old`, `${pins}/kp_ct`]);
      restored = true;
    };
    t.teardown(restore);
    const show = new Promise<{ code: number | null; out: string; err: string }>((ok) => {
      const c = spawn(process.execPath, [KPBPF, '--bpffs', bpffs, '--json', 'show', 'vips'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (err += d));
      c.on('exit', (code) => ok({ code, out, err }));
    });
    await new Promise((r) => setTimeout(r, 700));
    restore();
    const r = await show;
    t.equal(r.code, 0, r.err);
    t.ok(Array.isArray(JSON.parse(r.out)), 'the VIPs, once the table was back');
  });

  t.test('pins of another layout version are refused, naming both versions', async (t) => {
    withControl((c) => c.dp.maps.layout.update(0, 1));
    const r = await kp('show', 'vips');
    t.equal(r.code, 1);
    t.match(r.err, new RegExp(`has map layout version 1, this kpbpf has ${LAYOUT_VERSION}: its maps' fields mean other things`));
    const a = await kp('attach', '--cgroup', '/proc/self/status');
    t.equal(a.code, 2, 'argument errors still come first');
    // Put the version back through the raw pin (the Control refuses to open it now).
    const fd = lb.bpf_obj_get(`${bpffs}/kpbpf/kp_layout`);
    const m = new BpfMap(fd, u32, u32, 'kp_layout');
    m.update(0, LAYOUT_VERSION);
    m.close();
    t.equal((await kp('show', 'vips')).code, 0, 'the same version again: opens');
  });

  t.test('capacity is checked before anything changes, in a dry run too: 4,097 prefix VIPs', async (t) => {
    const before = await json('show', 'vips');
    const vips = Array.from({ length: 4097 }, (_, i) => ({ prefix: `198.18.${i >> 6}.${(i & 63) << 2}/30`, port: 80, backends: [] }));
    const file = `${tmp}/prefixes.json`;
    writeFileSync(file, JSON.stringify({ vips }));
    for (const dry of [['--dry-run'], []]) {
      const r = await kp('apply', '-f', file, ...dry);
      t.equal(r.code, 1, `refused${dry.length ? ' (dry run)' : ''}`);
      t.match(r.err, /the config has 4097 prefix VIPs but kp_vip_pfx holds 4096; nothing was applied/);
    }
    t.same(await json('show', 'vips'), before, 'nothing changed');
  });

  t.test('apply: full sync, then no-op, then a one-backend change', async (t) => {
    const file = `${tmp}/a.json`;
    writeFileSync(file, JSON.stringify(config));
    const dry = await json('apply', '-f', file, '--dry-run');
    t.ok(dry.ops.length > 0, 'dry run plans changes');
    t.equal((await json('show', 'vips'))[0].targetPort, 8081, 'dry run changed nothing');
    const r = await json('apply', '-f', file);
    t.ok(r.ops.some((o: string) => o.startsWith('vip add 198.18.100.20/32 udp port 53')), 'the UDP VIP is added');
    const vips = await json('show', 'backends');
    t.same(
      vips.map((v: { prefix: string; protocol: string; port: number; targetPort: number; backends: { address: string; weight: number }[] }) => [v.prefix, v.protocol, v.port, v.targetPort, v.backends.map((b) => `${b.address}*${b.weight}`).sort()]),
      [
        ['198.18.100.10/32', 'tcp', 80, 8080, ['198.18.1.2*1', '198.18.2.2*3']],
        ['198.18.100.20/32', 'udp', 53, 5353, ['198.18.1.2*1']],
      ],
    );
    t.match(await json('show', 'conf'), { timeout: 30, buckets: 2048 });
    t.same((await json('apply', '-f', file)).ops, [], 'applying again changes nothing');
    config.vips[0].backends = ['198.18.1.2'];
    writeFileSync(file, JSON.stringify(config));
    const one = await json('apply', '-f', file);
    t.same(one.ops, ['backend del 198.18.100.10/32 tcp port 80 198.18.2.2'], 'one endpoint removed is one operation');
  });

  t.test('apply that fails half way rolls the running state back', async (t) => {
    const before = await json('show', 'backends');
    const file = `${tmp}/halfway.json`;
    const bigger = {
      ...config,
      vips: [
        ...config.vips.map((v, i) => (i === 0 ? { ...v, backends: ['198.18.1.2', '198.18.7.7'] } : v)),
        { prefix: '198.18.100.60/32', protocol: 'tcp', port: 443, backends: ['198.18.1.2', '198.18.2.2', '198.18.3.2'] },
      ],
    };
    writeFileSync(file, JSON.stringify(bigger));
    // Adding the new VIP's backends (putBackends: apply's path) fails, as a full map or a kernel error would, after a backend
    // was added to the first VIP and the new VIP was made.
    const real = VipTable.prototype.putBackends;
    let calls = 0;
    VipTable.prototype.putBackends = function (this: VipTable, ...args: Parameters<typeof real>) {
      calls++;
      if (args[1].includes('198.18.3.2')) throw new Error('injected failure');
      return real.apply(this, args);
    };
    let r;
    try {
      r = await kp('apply', '-f', file);
    } finally {
      VipTable.prototype.putBackends = real;
    }
    t.equal(r.code, 1);
    t.match(r.err, /apply failed, running state restored: injected failure/);
    const after = await json('show', 'backends');
    const shape = (vs: { prefix: string; protocol: string; port: number; targetPort: number; newLen: number; backends: { address: string; weight: number; state: string }[] }[]) =>
      vs.map((v) => [v.prefix, v.protocol, v.port, v.targetPort, v.newLen, v.backends.filter((b) => b.state === 'active').map((b) => `${b.address}*${b.weight}`).sort()]);
    t.same(shape(after), shape(before), 'same VIPs and active backends as before the apply');
    t.ok(calls >= 2, 'the failure happened after changes had been made');
    const draining = after.flatMap((v: { backends: { address: string; state: string }[] }) => v.backends.filter((b) => b.state === 'draining').map((b) => b.address));
    t.same(draining, [], 'backends the failed apply added are freed again (no flow used them)');
  });

  t.test('a failed apply leaves a VIP it would have deleted exactly as it was: ids and generations', async (t) => {
    const before = await json('show', 'backends');
    const victim = before.find((v: { prefix: string }) => v.prefix === '198.18.100.20/32');
    t.ok(victim, 'the VIP the file leaves out');
    const file = `${tmp}/delete-then-fail.json`;
    const next = { ...config, vips: [config.vips[0], { prefix: '198.18.100.61/32', protocol: 'tcp', port: 80, backends: ['198.18.1.2', '198.18.2.2'] }] };
    writeFileSync(file, JSON.stringify(next));
    const real = VipTable.prototype.putBackends;
    VipTable.prototype.putBackends = function (this: VipTable, ...args: Parameters<typeof real>) {
      if (args[1].includes('198.18.2.2') && (args[0] as { id: number }).id !== before[0].id) throw new Error('injected failure');
      return real.apply(this, args);
    };
    let r;
    try {
      r = await kp('apply', '-f', file);
    } finally {
      VipTable.prototype.putBackends = real;
    }
    t.match(r.err, /apply failed, running state restored: injected failure/);
    const after = await json('show', 'backends');
    const same = after.find((v: { prefix: string }) => v.prefix === '198.18.100.20/32');
    t.same(same, victim, 'same VIP id, backend ids, generations and slots: its connections go on');
    t.notOk(after.find((v: { prefix: string }) => v.prefix === '198.18.100.61/32'), 'the new VIP is gone again');
  });

  t.test('a node port handed from a deleted VIP to a new one in one apply: the old one goes first', async (t) => {
    const file = `${tmp}/nodeport-handover.json`;
    const np = (prefix: string) => ({ ...config, vips: [...config.vips, { prefix, protocol: 'tcp', port: 80, node_port: 30990, backends: ['198.18.1.2'] }] });
    writeFileSync(file, JSON.stringify(np('198.18.100.62/32')));
    t.equal((await kp('apply', '-f', file)).code, 0);
    writeFileSync(file, JSON.stringify(np('198.18.100.63/32')));
    const r = await kp('apply', '-f', file);
    t.equal(r.code, 0, r.err);
    const vips = await json('show', 'vips');
    t.same(vips.filter((v: { nodePort?: number }) => v.nodePort === 30990).map((v: { prefix: string }) => v.prefix), ['198.18.100.63/32']);
    writeFileSync(file, JSON.stringify(config));
    t.equal((await kp('apply', '-f', file)).code, 0);
  });

  t.test('apply naming an interface that does not exist changes nothing', async (t) => {
    const before = await json('show', 'backends');
    const file = `${tmp}/noif.json`;
    writeFileSync(file, JSON.stringify({ ...config, interfaces: [{ name: 'kpnosuch0' }], vips: [] }));
    const r = await kp('apply', '-f', file);
    t.equal(r.code, 1);
    t.match(r.err, /interfaces not found: kpnosuch0/);
    t.same(await json('show', 'backends'), before, 'VIPs untouched');
  });

  t.test('apply of an invalid config lists every bad field and changes nothing', async (t) => {
    const before = await json('show', 'backends');
    const file = `${tmp}/bad.json`;
    writeFileSync(file, JSON.stringify({ conf: { timeout: 0 }, vips: [{ prefix: '198.18.100.30/33', port: 80, new_len: 1000, backends: ['198.18.1.300'] }] }));
    const r = await kp('apply', '-f', file);
    t.equal(r.code, 1);
    for (const p of ['/conf/timeout', '/vips/0/prefix', '/vips/0/new_len', '/vips/0/backends/0']) t.match(r.err, p, `names ${p}`);
    t.same(await json('show', 'backends'), before, 'running state untouched');
    writeFileSync(file, '{"vips": [ }');
    const s = await kp('apply', '-f', file);
    t.equal(s.code, 1);
    t.match(s.err, /bad\.json:1:\d+/, 'a JSON syntax error names file, line and column');
  });

  t.test('show stats and flows read the counters and the connection table', async (t) => {
    const s = await json('show', 'stats');
    t.ok('dnat' in s.global && 'pass_no_match' in s.global);
    t.match(s.vips[0].counters, { existingPkts: Number, firstPkts: Number, untrackedPkts: Number, noServerPkts: Number });
    t.same(await json('show', 'flows'), []);
    const text = await kp('show', 'stats');
    t.match(text.out, /packet from existing sessions/);
    t.match(text.out, /first session packet/);
    t.match(text.out, /no server configured/);
  });

  t.test('apply: a flow-table size change is part of the plan and keeps the services', async (t) => {
    const file = `${tmp}/resize.json`;
    const vipsBefore = await json('show', 'backends');
    writeFileSync(file, JSON.stringify({ ...config, conf: { buckets: 4096, timeout: 30 } }));
    const r = await json('apply', '-f', file);
    t.same(r.ops, ['conf buckets 4096']);
    t.match(await json('show', 'conf'), { buckets: 4096, timeout: 30 });
    t.same(await json('show', 'backends'), vipsBefore, 'VIPs, backends and tables survive the reload');
  });

  t.test('one writer at a time: a live holder blocks, a dead one is freed by the kernel', async (t) => {
    const pinDir = `${bpffs}/kpbpf`;
    // A live holder: another process that took the lock and waits.
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `const { lockWriter } = await import(${JSON.stringify(new URL('../../dist/dataplane/lock.js', import.meta.url).href)}); lockWriter(${JSON.stringify(pinDir)}); console.log('held'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => holder.kill('SIGKILL'));
    await new Promise<void>((ok) => holder.stdout!.once('data', () => ok()));
    process.env.KPBPF_LOCK_WAIT_MS = '300';
    try {
      const r = await kp('vip', 'add', '198.18.100.40/32', 'port', '80');
      t.equal(r.code, 1);
      t.match(r.err, new RegExp(`another kpbpf \\(.*\\(pid ${holder.pid}\\)\\) is changing`), 'the holder named, with its pid');
      t.equal((await kp('show', 'vips')).code, 0, 'reads do not take the lock');
      // Killed as a crash would: nothing is left behind, the kernel freed the name.
      holder.kill('SIGKILL');
      await new Promise((ok) => holder.once('exit', ok));
      const ok = await kp('vip', 'add', '198.18.100.40/32', 'port', '80');
      t.equal(ok.code, 0, ok.err);
      t.notOk(readFileSync('/proc/net/unix', 'utf8').includes(lockPath(pinDir)), 'the lock is released when the command ends');
      t.equal((await kp('vip', 'del', '198.18.100.40/32', 'port', '80')).code, 0);
    } finally {
      delete process.env.KPBPF_LOCK_WAIT_MS;
    }
  });

  t.test('a daemon holding the lock is named at once, without waiting', async (t) => {
    const pinDir = `${bpffs}/kpbpf`;
    const lock = lockWriter(pinDir, undefined, 'kpbpf run -f /etc/kpbpf/conf.json');
    try {
      const t0 = Date.now();
      const r = await kp('vip', 'add', '198.18.100.40/32', 'port', '80');
      t.equal(r.code, 1);
      t.match(r.err, new RegExp(`kpbpf run -f /etc/kpbpf/conf.json \\(pid ${process.pid}\\) owns ${pinDir}: change its config file instead`));
      t.ok(Date.now() - t0 < 5000, 'refused at once');
    } finally {
      lock.release();
    }
    t.equal((await kp('vip', 'add', '198.18.100.40/32', 'port', '80')).code, 0, 'free once released');
    t.equal((await kp('vip', 'del', '198.18.100.40/32', 'port', '80')).code, 0);
  });

  t.test('detach --purge removes every pin', async (t) => {
    const r = await kp('detach', '--purge');
    t.equal(r.code, 0, r.err);
    t.same(readdirSync(bpffs).filter((f) => !f.endsWith('.debug')), [], 'no kpbpf pin is left (the kernel own *.debug files stay)');
  });
}
