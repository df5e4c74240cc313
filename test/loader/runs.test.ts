// The word allocator of the shared Maglev store: first fit, coalescing, and no reuse of a released
// run before its quarantine ends (a packet may still read the table it held).
import t from 'tap';
import { RunAllocator } from '../../src/loader/runs.js';

t.test('first fit from the start, free words counted', async (t) => {
  const a = new RunAllocator(100, 1000);
  t.equal(a.alloc(30), 0);
  t.equal(a.alloc(30), 30);
  t.equal(a.freeWords(), 40);
  t.equal(a.alloc(41), -1, 'no run long enough');
  t.equal(a.alloc(40), 60, 'the rest exactly');
  t.equal(a.freeWords(), 0);
  t.equal(a.alloc(1), -1);
});

t.test('a released run is reused only after the quarantine', async (t) => {
  const a = new RunAllocator(64, 1000);
  t.equal(a.alloc(64), 0);
  a.release(0, 32, 5000);
  a.reclaim(5999);
  t.equal(a.alloc(32), -1, 'still quarantined 999 ms later');
  a.reclaim(6000);
  t.equal(a.alloc(32), 0, 'free after 1000 ms');
});

t.test('neighbours coalesce, so a long run fits again', async (t) => {
  const a = new RunAllocator(90, 0);
  const runs = [a.alloc(30), a.alloc(30), a.alloc(30)];
  t.same(runs, [0, 30, 60]);
  a.release(0, 30, 0);
  a.release(60, 30, 0);
  a.release(30, 30, 0);
  a.reclaim(0);
  t.equal(a.freeWords(), 90);
  t.equal(a.alloc(90), 0, 'one run of all 90 words');
});

t.test('built from the runs in use; extend adds free words at the end', async (t) => {
  const a = new RunAllocator(100, 0);
  a.markUsed([[50, 10], [10, 20]]);
  t.equal(a.freeWords(), 70);
  t.equal(a.alloc(10), 0);
  t.equal(a.alloc(20), 30, 'the gap between the two used runs');
  t.equal(a.alloc(40), 60);
  a.extend(200);
  t.equal(a.capacity, 200);
  t.equal(a.alloc(100), 100);
});

t.test('freeing a run twice is refused instead of handing it out twice', async (t) => {
  const a = new RunAllocator(10, 0);
  t.equal(a.alloc(10), 0);
  a.release(0, 10, 0);
  a.release(0, 10, 0);
  t.throws(() => a.reclaim(0), RangeError);
});
