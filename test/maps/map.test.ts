// The typed map API against real kernel maps (needs root).
import t from 'tap';
import { join } from 'node:path';
import { BPF_F_NO_PREALLOC, BPF_MAP_TYPE, BPF_NOEXIST, check, lb, MapCreateOpts, numPossibleCpus, opts } from '../../src/sys/libbpf.js';
import * as c from '../../src/maps/codecs.js';
import { addRecords, addU64, BpfMap, PerCpuMap } from '../../src/maps/map.js';
import { notRootReason, privateBpffs } from '../loader/fixtures/helpers.js';

const skip = notRootReason() ?? false;

function create(type: number, ks: number, vs: number, max: number, flags = 0): number {
  return check('bpf_map_create', lb.bpf_map_create(type, 'kp_test', ks, vs, max, opts(MapCreateOpts, { map_flags: flags })));
}

t.test('hash map: miss, update, lookup, delete, iteration', { skip }, async (t) => {
  const m = BpfMap.fromFd(create(BPF_MAP_TYPE.HASH, c.vipKey.size, c.vip.size, 64), c.vipKey, c.vip);
  t.teardown(() => m.close());
  t.equal(m.info.type, BPF_MAP_TYPE.HASH);
  t.equal(m.info.maxEntries, 64);
  const k1 = { addr: '198.18.0.10', port: 80, proto: 6 };
  const k2 = { addr: '2001:db8::10', port: 53, proto: 17 };
  t.equal(m.lookup(k1), undefined, 'miss is undefined');
  t.equal(m.delete(k1), false, 'deleting a missing key is false');
  m.update(k1, { id: 1, tableLen: 7, flags: 0, targetPort: 8080, nodePort: 0 });
  m.update(k2, { id: 2, tableLen: 11, flags: 0, targetPort: 5353, nodePort: 0 });
  t.same(m.lookup(k1), { id: 1, tableLen: 7, flags: 0, targetPort: 8080, nodePort: 0 });
  t.throws(() => m.update(k1, { id: 9, tableLen: 7, flags: 0, targetPort: 1, nodePort: 0 }, BPF_NOEXIST), { code: 'KP_ERR_BPF', errnoName: 'EEXIST' });
  const keys = [...m.keys()].map((k) => k.addr).sort();
  t.same(keys, ['198.18.0.10', '2001:db8::10']);
  const entries = new Map([...m.entries()].map(([k, v]) => [k.addr, v.id]));
  t.same(Object.fromEntries(entries), { '198.18.0.10': 1, '2001:db8::10': 2 });
  t.equal(m.delete(k1), true);
  t.equal(m.lookup(k1), undefined);
  t.same([...m.entries()].length, 1);
});

t.test('batch update and batch lookup over more than one chunk', { skip }, async (t) => {
  const m = BpfMap.fromFd(create(BPF_MAP_TYPE.HASH, 4, c.backend.size, 2048), c.u32, c.backend);
  t.teardown(() => m.close());
  const n = 600;
  const be = (i: number) => ({ addr: `198.18.${i >> 8}.${i & 255}`, port: 8000 + i, state: 1, gen: i, vipId: 1, weight: 1 });
  m.updateBatch(Array.from({ length: n }, (_, i) => [i + 1, be(i + 1)] as const));
  const all = m.lookupBatch();
  t.ok(all, 'hash maps support batch lookup');
  t.equal(all!.length, n);
  t.same(new Set(all!.map(([k]) => k)).size, n, 'no duplicates');
  t.ok(all!.every(([k, v]) => v.port === 8000 + k && v.addr === be(k).addr), 'values match their keys');
  t.same(m.lookup(600), be(600));
  t.equal([...m.entries()].length, n, 'entries() sees everything');
});

t.test('LPM trie: no batch ops, entries() falls back to get_next_key', { skip }, async (t) => {
  const m = BpfMap.fromFd(create(BPF_MAP_TYPE.LPM_TRIE, c.vipPfxKey.size, c.vip.size, 16, BPF_F_NO_PREALLOC), c.vipPfxKey, c.vip);
  t.teardown(() => m.close());
  const k = { len128: 104, proto: 6, port: 80, addr: '90.0.0.0' };
  m.updateBatch([[k, { id: 3, tableLen: 7, flags: 1, targetPort: 80, nodePort: 0 }]]);
  m.update({ ...k, len128: 112, addr: '90.1.0.0' }, { id: 4, tableLen: 7, flags: 1, targetPort: 80, nodePort: 0 });
  // A full-length lookup finds the longest match, as the data plane's does.
  t.equal(m.lookup({ len128: 128, proto: 6, port: 80, addr: '90.1.2.3' })?.id, 4);
  t.equal(m.lookup({ len128: 128, proto: 6, port: 80, addr: '90.2.2.3' })?.id, 3);
  t.equal(m.lookup({ len128: 128, proto: 6, port: 81, addr: '90.2.2.3' }), undefined, 'port is part of the match');
  const ids = [...m.entries()].map(([, v]) => v.id).sort();
  t.same(ids, [3, 4]);
});

t.test('per-CPU array: one value per possible CPU, sums', { skip }, async (t) => {
  const ncpu = numPossibleCpus();
  const m = PerCpuMap.fromFd(create(BPF_MAP_TYPE.PERCPU_ARRAY, 4, c.backendStats.size, 4), c.u32, c.backendStats);
  t.teardown(() => m.close());
  t.equal(m.ncpus, ncpu);
  const vals = Array.from({ length: ncpu }, (_, i) => ({ packets: BigInt(i + 1), bytes: BigInt(100 * (i + 1)) }));
  m.update(2, vals);
  t.same(m.lookup(2), vals);
  const tri = BigInt((ncpu * (ncpu + 1)) / 2);
  t.same(m.sum(2, addRecords), { packets: tri, bytes: 100n * tri });
  t.same(m.lookup(1), Array(ncpu).fill({ packets: 0n, bytes: 0n }), 'array slots start at zero');
  t.equal(m.lookup(9), undefined, 'out of range is a miss');
  t.equal([...m.entries()].length, 4);
  // One batched walk: the wanted keys' fields summed over CPUs as Numbers, above 2^32 too.
  m.update(3, Array.from({ length: ncpu }, () => ({ packets: 2n ** 33n + 1n, bytes: 7n })));
  const batch = m.sumCountersBatch((k) => k !== 1);
  t.same([...batch!.keys()].sort(), [0, 2, 3], 'the wanted keys');
  t.same([...batch!.get(2)!], [Number(tri), Number(100n * tri)], 'equal to sum()');
  t.same([...batch!.get(3)!], [ncpu * (2 ** 33 + 1), 7 * ncpu]);

  // __u64 values in a per-CPU map are already 8 bytes; a 4-byte value is padded to 8 per CPU.
  const s = PerCpuMap.fromFd(create(BPF_MAP_TYPE.PERCPU_ARRAY, 4, 8, 2), c.u32, c.u64);
  const p = PerCpuMap.fromFd(create(BPF_MAP_TYPE.PERCPU_HASH, 4, 4, 2), c.u32, c.u32);
  t.teardown(() => (s.close(), p.close()));
  s.update(1, 5n);
  t.equal(s.sum(1, addU64), 5n * BigInt(ncpu));
  p.update(7, Array.from({ length: ncpu }, (_, i) => i + 10));
  t.same(p.lookup(7), Array.from({ length: ncpu }, (_, i) => i + 10));
});

t.test('LRU hash with the connection codecs', { skip }, async (t) => {
  const m = BpfMap.fromFd(create(BPF_MAP_TYPE.LRU_HASH, c.flowKey.size, c.ct.size, 128), c.flowKey, c.ct);
  t.teardown(() => m.close());
  const k = { saddr: '198.18.0.1', daddr: '198.18.1.10', sport: 40000, dport: 80, proto: 6, dir: 0 };
  const v = { vipAddr: '::', lastSeenNs: 123n, backendId: 3, backendGen: 1, vipId: 1, vipPort: 0, clientPort: 40000, state: 3, flags: 0 };
  m.update(k, v);
  t.same(m.lookup(k), v);
  t.same([...m.entries()].map(([key]) => key), [k]);
  t.equal(m.delete(k), true);
});

t.test('codec and map disagree: a clear error, fd closed', { skip }, async (t) => {
  const fd = create(BPF_MAP_TYPE.HASH, 8, 8, 4);
  t.throws(() => BpfMap.fromFd(fd, c.u32, c.u64), { code: 'KP_ERR_STATE', message: /key size 8 != codec 4/ });
  const pfd = create(BPF_MAP_TYPE.PERCPU_ARRAY, 4, 8, 4);
  t.throws(() => BpfMap.fromFd(pfd, c.u32, c.u64), { code: 'KP_ERR_STATE', message: /per-CPU: use PerCpuMap/ });
});

t.test('pin in a private bpffs and reopen from the pin', { skip }, async (t) => {
  const fs = privateBpffs('maps');
  t.teardown(() => fs.umount());
  const m = BpfMap.fromFd(create(BPF_MAP_TYPE.ARRAY, 4, 4, 8), c.u32, c.u32);
  const path = join(fs.dir, 'kp_arr');
  check('bpf_obj_pin', lb.bpf_obj_pin(m.fd, path));
  m.update(3, 33);
  m.close();
  const again = BpfMap.fromPin(path, c.u32, c.u32);
  t.teardown(() => again.close());
  t.equal(again.lookup(3), 33, 'the pinned map kept its contents');
  t.throws(() => BpfMap.fromPin(join(fs.dir, 'nothing'), c.u32, c.u32), { code: 'KP_ERR_BPF', errnoName: 'ENOENT' });
});
