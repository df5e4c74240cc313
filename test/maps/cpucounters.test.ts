// Counter arrays sliced per CPU (src/maps/cpucounters.ts): CPU c's entry for id i is c * slice + i,
// zeroed with batched updates, read and summed through a mapping made for each read.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { BPF_F_MMAPABLE, BPF_MAP_TYPE, check, dupFd, lb, MapCreateOpts, numPossibleCpus, opts } from '../../src/sys/libbpf.js';
import * as c from '../../src/maps/codecs.js';
import { CpuCounters, ZERO_MAPPED_MIN } from '../../src/maps/cpucounters.js';
import { BpfMap } from '../../src/maps/map.js';
import { notRootReason } from '../loader/fixtures/helpers.js';

const skip = notRootReason() ?? false;
const SLICE = 8;

function create(entries: number, flags = BPF_F_MMAPABLE, valueSize = c.backendStats.size): number {
  return check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.ARRAY, 'kp_test', 4, valueSize, entries, opts(MapCreateOpts, { map_flags: flags })));
}

t.test('each CPU its slice: written through the map, read and summed through the mapping', { skip }, async (t) => {
  const ncpus = numPossibleCpus();
  const fd = create(SLICE * ncpus);
  // A second handle on the same array writes as the program would: key c * slice + id.
  const raw = new BpfMap(dupFd(fd), c.u32, c.backendStats, 'kp_test');
  const counters = new CpuCounters(fd, c.backendStats, 'kp_test');
  t.teardown(() => (counters.close(), raw.close()));
  t.equal(counters.ncpus, ncpus);
  t.equal(counters.slice, SLICE);
  const mappings = () => readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('bpf-map')).length;
  const before = mappings();
  for (let cpu = 0; cpu < ncpus; cpu++) raw.update(cpu * SLICE + 3, { packets: BigInt(cpu + 1), bytes: BigInt(100 * (cpu + 1)) });
  const per = counters.lookup(3);
  t.same(per.map((v) => v.packets), Array.from({ length: ncpus }, (_, cpu) => BigInt(cpu + 1)), "id 3 on each CPU, from that CPU's slice");
  const sum = ncpus * (ncpus + 1) / 2;
  t.same([...counters.sumCounters([3, 4]).get(3)!], [sum, 100 * sum], 'summed over the CPUs');
  t.same([...counters.sumCounters([3, 4]).get(4)!], [0, 0], 'an id never counted is zero');
  counters.zero([3]);
  t.same([...counters.sumCounters([3]).get(3)!], [0, 0], 'zeroed on every CPU');
  t.same(raw.lookup((ncpus - 1) * SLICE + 3), { packets: 0n, bytes: 0n }, 'as the map sees it');
  const many = Array.from({ length: Math.max(ZERO_MAPPED_MIN, SLICE) }, (_, i) => i % SLICE);
  counters.update(6, { packets: 1n, bytes: 2n });
  counters.zero(many);
  t.same(raw.lookup((ncpus - 1) * SLICE + 6), { packets: 0n, bytes: 0n }, 'many ids at once (through the mapping): zeroed on every CPU');
  t.equal(mappings(), before, 'and unmapped');
  counters.update(5, { packets: 7n, bytes: 9n });
  t.same(raw.lookup(5), { packets: 7n, bytes: 9n }, 'update writes every CPU');
  counters.sumCounters([3]);
  counters.lookup(3);
  t.equal(mappings(), before, 'no mapping is left behind (the kernel maps all of an array at mmap: kept, it would all count as resident)');
  t.throws(() => counters.lookup(SLICE), /id 8 is outside kp_test \(0-7\)/, "an id past the slice would read the next CPU's: refused");
  t.throws(() => counters.zero([-1]), /outside/);
});

t.test('an array that is not counters sliced per CPU is refused', { skip }, async (t) => {
  const ncpus = numPossibleCpus();
  t.throws(() => new CpuCounters(create(SLICE * ncpus, 0), c.backendStats, 'plain'), /map plain is not a per-CPU counter array: not mappable/);
  if (ncpus > 1) t.throws(() => new CpuCounters(create(SLICE * ncpus + 1), c.backendStats, 'odd'), /entries are not a slice for each of/);
  t.throws(() => new CpuCounters(create(SLICE * ncpus, BPF_F_MMAPABLE, 8), c.backendStats, 'small'), /map small does not match its codec: value size 8 != codec 16/);
});
