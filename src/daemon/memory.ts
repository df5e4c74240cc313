// After a long-running mode's first full sync: its input, translation and plan are garbage (over
// 100 MiB at 10k services) that V8 keeps committed until its heap grows again, and the program load
// left freed memory in the allocator's arenas. One full collection and a malloc_trim give it back
// (measured once, 2026-12-07 on the development host, 10k services under --kubernetes: 376 MiB
// resident at the sync, 307 MiB two seconds later, where without them it stayed at 382 MiB).
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { libcFns } from '../sys/libbpf.js';

export function settleMemory(): void {
  try {
    v8.setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // not available: V8 collects when it needs to
  }
  try {
    libcFns.malloc_trim(0);
  } catch {
    // not glibc: nothing to trim
  }
}
