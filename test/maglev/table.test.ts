import t from 'tap';
import {
  buildMaglevTable,
  maglevPermutation,
  isPrime,
  nextPrime,
  KP_MAGLEV_MIN_LEN,
  KP_MAGLEV_MAX_LEN,
  KP_MAGLEV_DEFAULT_LEN,
  type MaglevBackend,
} from '../../src/maglev/table.js';
import { readFileSync } from 'node:fs';

const backends = (n: number, from = 0): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ id: from + i + 1, key: `198.18.${(from + i) >> 8}.${(from + i) & 255}:8080` }));

function counts(table: Uint32Array): Map<number, number> {
  const c = new Map<number, number>();
  for (const v of table) c.set(v, (c.get(v) ?? 0) + 1);
  return c;
}

function moved(a: Uint32Array, b: Uint32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

t.test('constants match bpf/kp_shared.h', async (t) => {
  const h = readFileSync(new URL('../../bpf/kp_shared.h', import.meta.url), 'utf8');
  const def = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(h)?.[1]);
  t.equal(KP_MAGLEV_MIN_LEN, def('KP_MAGLEV_MIN_LEN'));
  t.equal(KP_MAGLEV_MAX_LEN, def('KP_MAGLEV_MAX_LEN'));
  t.equal(KP_MAGLEV_DEFAULT_LEN, def('KP_MAGLEV_DEFAULT_LEN'));
  t.ok(isPrime(KP_MAGLEV_MIN_LEN) && isPrime(KP_MAGLEV_MAX_LEN) && isPrime(KP_MAGLEV_DEFAULT_LEN));
});

t.test('isPrime and nextPrime', async (t) => {
  const small = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47];
  t.same(Array.from({ length: 50 }, (_, i) => i).filter(isPrime), small);
  t.ok(isPrime(65537) && isPrime(131071) && isPrime(1021));
  t.notOk(isPrime(65535) || isPrime(131073) || isPrime(1.5) || isPrime(-7) || isPrime(NaN));
  t.equal(nextPrime(1000), 1009);
  t.equal(nextPrime(1021), 1021);
  t.equal(nextPrime(65536), 65537);
  t.equal(nextPrime(0), 2);
});

t.test('bad sizes are rejected, naming the value', async (t) => {
  for (const size of [0, 6, 8, 1000, 65536, 131072, 131101, 1021.5, NaN]) {
    t.throws(() => buildMaglevTable(backends(2), size), { code: 'KP_ERR_ARG', message: new RegExp(`got ${size}`) }, `${size}`);
  }
  t.throws(() => buildMaglevTable([], 1000), { message: /prime/ });
  t.throws(() => buildMaglevTable([], 131101), { message: /\[7, 131071\]/ });
});

t.test('bad backends are rejected', async (t) => {
  t.throws(() => buildMaglevTable([{ id: 0, key: 'a' }], 7), { code: 'KP_ERR_ARG', message: /id/ });
  t.throws(() => buildMaglevTable([{ id: 1, key: 'a', weight: -1 }], 7), { code: 'KP_ERR_ARG', message: /weight/ });
  t.throws(() => buildMaglevTable([{ id: 1, key: 'a', weight: 65536 }], 7), { message: /weight/ });
  t.throws(() => buildMaglevTable([{ id: 1, key: 'a' }, { id: 2, key: 'a' }], 7), { message: /duplicate backend key a/ });
});

t.test('no backend, or only weight 0, gives a table of zeros', async (t) => {
  t.same(buildMaglevTable([], 7), new Uint32Array(7));
  t.same(buildMaglevTable([{ id: 3, key: 'x', weight: 0 }], 13), new Uint32Array(13));
  const t2 = buildMaglevTable([{ id: 3, key: 'x', weight: 0 }, { id: 4, key: 'y' }], 13);
  t.same(t2, new Uint32Array(13).fill(4), 'weight 0 gets no slot');
});

t.test('golden vectors: size 13, three backends', async (t) => {
  // Derived by hand from the definition. MurmurHash3 x86_32 of the UTF-8 key (pinned by
  // flow-hash.test.ts) with seeds 0x6b706f66 (offset) and 0x6b70736b (skip):
  //   "198.18.1.2:8080" h1=0xfe127490 h2=0x4a64cdb2 -> offset 1, skip 3: 1 4 7 10 0 3 6 9 12 2 5 8 11
  //   "198.18.1.3:8080" h1=0x5502fb23 h2=0xbf1f1a34 -> offset 6, skip 1: 6 7 8 9 10 11 12 0 1 ...
  //   "198.18.1.4:8080" h1=0x88aa0a55 h2=0x976c4c65 -> offset 2, skip 2: 2 4 6 8 10 12 1 3 5 ...
  const keys = ['198.18.1.2:8080', '198.18.1.3:8080', '198.18.1.4:8080'];
  t.same(
    keys.map((k) => maglevPermutation(k, 13)),
    [
      { offset: 1, skip: 3 },
      { offset: 6, skip: 1 },
      { offset: 2, skip: 2 },
    ],
  );
  // Equal weights, turns A B C per round:
  //   r1 A:1 B:6 C:2  r2 A:4 B:7 C:8  r3 A:10 B:9 C:12  r4 A:0 B:11 C:3  r5 A:5 (full)
  const equal = keys.map((key, i) => ({ id: i + 1, key }));
  t.same(Array.from(buildMaglevTable(equal, 13)), [1, 1, 3, 3, 1, 1, 2, 2, 3, 2, 1, 2, 3]);
  // Weights 1:2:3 (credit += w per round, a turn at credit >= 3):
  //   r1 C:2  r2 B:6 C:4  r3 A:1 B:7 C:8  r4 C:10  r5 B:9 C:12  r6 A:0 B:11 C:3  r7 C:5 (full)
  const weighted = keys.map((key, i) => ({ id: i + 1, key, weight: i + 1 }));
  t.same(Array.from(buildMaglevTable(weighted, 13)), [1, 1, 3, 3, 3, 3, 2, 2, 3, 2, 3, 2, 3]);
});

// The paper's pseudo-code (section 3.4, unweighted) with explicit permutation arrays.
function referenceMaglev(bs: MaglevBackend[], m: number): Uint32Array {
  const sorted = [...bs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const perm = sorted.map((b) => {
    const { offset, skip } = maglevPermutation(b.key, m);
    return Array.from({ length: m }, (_, j) => (offset + j * skip) % m);
  });
  const next = sorted.map(() => 0);
  const entry = new Array<number>(m).fill(-1);
  let n = 0;
  for (;;) {
    for (let i = 0; i < sorted.length; i++) {
      let c = perm[i][next[i]];
      while (entry[c] >= 0) c = perm[i][++next[i]];
      entry[c] = sorted[i].id;
      next[i]++;
      if (++n === m) return Uint32Array.from(entry);
    }
  }
}

t.test('equal weights match the paper pseudo-code', async (t) => {
  for (const [n, m] of [
    [1, 7],
    [5, 7],
    [9, 7],
    [17, 1021],
    [100, 10007],
  ]) {
    t.same(buildMaglevTable(backends(n), m), referenceMaglev(backends(n), m), `${n} backends, size ${m}`);
  }
});

t.test('every slot filled, more backends than slots too', async (t) => {
  for (const [n, m] of [
    [1, 7],
    [3, 13],
    [10, 7],
    [50, 1021],
    [1000, 65537],
  ]) {
    const table = buildMaglevTable(backends(n), m);
    t.equal(table.length, m);
    t.notOk(table.includes(0), `${n} backends in ${m}: no empty slot`);
  }
});

t.test('balance: max/mean <= 1.02 when size >= 100 x backends', async (t) => {
  for (const n of [1, 2, 3, 5, 10, 37, 100, 500]) {
    const m = nextPrime(100 * n);
    const c = counts(buildMaglevTable(backends(n), m));
    t.equal(c.size, n, `${n} backends all present`);
    const ratio = Math.max(...c.values()) / (m / n);
    t.ok(ratio <= 1.02, `${n} backends in ${m}: max/mean ${ratio.toFixed(4)}`);
  }
});

t.test('removing one of N moves about 1/N of slots, survivors mostly stay', async (t) => {
  const m = 65537;
  for (const n of [3, 5, 10, 20]) {
    const all = backends(n);
    const before = buildMaglevTable(all, m);
    const gone = all[Math.floor(n / 2)].id;
    const after = buildMaglevTable(
      all.filter((b) => b.id !== gone),
      m,
    );
    const frac = moved(before, after) / m;
    t.ok(frac >= 0.95 / n && frac <= 1.15 / n, `N=${n}: moved ${frac.toFixed(4)}, ideal ${(1 / n).toFixed(4)}`);
    let surv = 0;
    let survMoved = 0;
    for (let i = 0; i < m; i++) {
      if (before[i] === gone) continue;
      surv++;
      if (after[i] !== before[i]) survMoved++;
    }
    t.ok(survMoved / surv < 0.01, `N=${n}: ${((100 * survMoved) / surv).toFixed(2)}% of survivors' slots moved`);
    t.notOk(after.includes(gone), 'removed backend has no slot');
  }
});

t.test('adding one to N moves about 1/(N+1) of slots', async (t) => {
  const m = 65537;
  for (const n of [2, 4, 9, 19]) {
    const before = buildMaglevTable(backends(n), m);
    const after = buildMaglevTable(backends(n + 1), m);
    const frac = moved(before, after) / m;
    const ideal = 1 / (n + 1);
    t.ok(frac >= 0.95 * ideal && frac <= 1.15 * ideal, `N=${n}+1: moved ${frac.toFixed(4)}, ideal ${ideal.toFixed(4)}`);
    const newId = n + 1;
    let bad = 0;
    for (let i = 0; i < m; i++) if (before[i] !== after[i] && after[i] !== newId) bad++;
    t.ok(bad / m < 0.01, `N=${n}+1: ${bad} slots moved between old backends`);
  }
});

t.test('same table for any backend order', async (t) => {
  const bs = backends(40).map((b, i) => ({ ...b, weight: 1 + (i % 4) }));
  const want = buildMaglevTable(bs, 4099);
  let x = 12345;
  for (let round = 0; round < 5; round++) {
    const shuffled = [...bs];
    for (let i = shuffled.length - 1; i > 0; i--) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const j = x % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
    }
    t.same(buildMaglevTable(shuffled, 4099), want, `shuffle ${round}`);
  }
  t.same(buildMaglevTable([...bs].reverse(), 4099), want, 'reversed');
});

t.test('weights are proportional', async (t) => {
  const m = 65537;
  const cases: number[][] = [
    [1, 2, 3],
    [1, 1, 4],
    [5, 10, 20, 65],
    [65535, 32768, 1000],
  ];
  for (const ws of cases) {
    const bs = ws.map((w, i) => ({ id: i + 1, key: `198.18.2.${i + 1}:80`, weight: w }));
    const c = counts(buildMaglevTable(bs, m));
    const total = ws.reduce((a, b) => a + b, 0);
    for (let i = 0; i < ws.length; i++) {
      const share = (c.get(i + 1) ?? 0) / m;
      const want = ws[i] / total;
      t.ok(Math.abs(share / want - 1) <= 0.02, `weights ${ws}: backend ${i + 1} share ${share.toFixed(4)}, want ${want.toFixed(4)}`);
    }
  }
});

t.test('fast: 65537 slots x 1000 backends well under a second', async (t) => {
  const bs = backends(1000);
  const start = performance.now();
  buildMaglevTable(bs, 65537);
  const ms = performance.now() - start;
  t.ok(ms < 500, `took ${ms.toFixed(1)} ms`);
});
