// Runs of words in a fixed-size space: first fit, coalescing frees, and a quarantine so that a run
// given back is not handed out again before a reader that may still use it is done.

export class RunAllocator {
  /** free runs [start, length], sorted by start, never adjacent */
  private free: Array<[number, number]> = [];
  private quarantine: Array<{ start: number; len: number; at: number }> = [];
  private freeTotal = 0;

  constructor(
    public capacity: number,
    private readonly reuseAfterMs: number,
  ) {
    if (capacity > 0) this.insert(0, capacity);
  }

  /** Take out runs that are in use (when starting from a store another process filled). */
  markUsed(runs: ReadonlyArray<readonly [number, number]>): void {
    const used = [...runs].sort((a, b) => a[0] - b[0]);
    this.free = [];
    this.freeTotal = 0;
    let at = 0;
    for (const [start, len] of used) {
      if (start > at) this.insert(at, start - at);
      at = Math.max(at, start + len);
    }
    if (this.capacity > at) this.insert(at, this.capacity - at);
  }

  freeWords(): number {
    return this.freeTotal;
  }

  /** The space grew to `capacity`: the new words are free. */
  extend(capacity: number): void {
    if (capacity > this.capacity) this.insert(this.capacity, capacity - this.capacity);
    this.capacity = Math.max(this.capacity, capacity);
  }

  /** The start of a free run of `len` words, now in use; -1 when none is long enough. */
  alloc(len: number): number {
    for (let i = 0; i < this.free.length; i++) {
      const run = this.free[i];
      if (run[1] < len) continue;
      const start = run[0];
      if (run[1] === len) this.free.splice(i, 1);
      else {
        run[0] += len;
        run[1] -= len;
      }
      this.freeTotal -= len;
      return start;
    }
    return -1;
  }

  /** A run no longer in use: free once `reuseAfterMs` have passed since `at`. */
  release(start: number, len: number, at: number): void {
    this.quarantine.push({ start, len, at });
  }

  /** Free the quarantined runs that have waited long enough. */
  reclaim(now: number): void {
    if (!this.quarantine.length) return;
    const keep: typeof this.quarantine = [];
    for (const q of this.quarantine) {
      if (now - q.at >= this.reuseAfterMs) this.insert(q.start, q.len);
      else keep.push(q);
    }
    this.quarantine = keep;
  }

  private insert(start: number, len: number): void {
    const f = this.free;
    let lo = 0;
    let hi = f.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid][0] < start) lo = mid + 1;
      else hi = mid;
    }
    const prev = f[lo - 1];
    const next = f[lo];
    if (prev && prev[0] + prev[1] > start) throw new RangeError(`run ${start}+${len} overlaps a free run`);
    if (next && start + len > next[0]) throw new RangeError(`run ${start}+${len} overlaps a free run`);
    this.freeTotal += len;
    if (prev && prev[0] + prev[1] === start) {
      prev[1] += len;
      if (next && prev[0] + prev[1] === next[0]) {
        prev[1] += next[1];
        f.splice(lo, 1);
      }
    } else if (next && start + len === next[0]) {
      next[0] = start;
      next[1] += len;
    } else {
      f.splice(lo, 0, [start, len]);
    }
  }
}
