// Maglev compile time, slot balance and disruption on removing/adding one backend, vs the ideal 1/N.
import { buildMaglevTable, type MaglevBackend } from '../maglev/table.js';

export interface MaglevRow {
  size: number;
  backends: number;
  compileMs: number; // median of the repetitions
  balance: number; // max slots of a backend / mean slots
  movedOnRemove: number; // fraction of slots whose backend changed when one backend left
  movedOnAdd: number; // same when one backend joined
  ideal: number; // 1/N
}

const backendsOf = (n: number, from = 0): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ id: from + i + 1, key: `198.18.${128 + ((from + i) >> 8)}.${(from + i) & 255}:8080` }));

function moved(a: Uint32Array, b: Uint32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) m++;
  return m / a.length;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

export function maglevRow(size: number, n: number, reps: number): MaglevRow {
  const bs = backendsOf(n);
  const times: number[] = [];
  let table: Uint32Array = new Uint32Array(0);
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    table = buildMaglevTable(bs, size);
    times.push(performance.now() - t0);
  }
  const counts = new Map<number, number>();
  for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
  const balance = Math.max(...counts.values()) / (size / n);
  // Remove the middle backend: the slots it held must move, ideally nothing else.
  const without = buildMaglevTable(bs.filter((_, i) => i !== n >> 1), size);
  const withOneMore = buildMaglevTable([...bs, ...backendsOf(1, n)], size);
  return { size, backends: n, compileMs: median(times), balance, movedOnRemove: moved(table, without), movedOnAdd: moved(table, withOneMore), ideal: 1 / n };
}

export function runMaglev(o: { sizes: number[]; backends: number[]; reps: number; log: (m: string) => void }): MaglevRow[] {
  const rows: MaglevRow[] = [];
  for (const size of o.sizes) {
    for (const n of o.backends) {
      if (n > size) continue;
      const r = maglevRow(size, n, o.reps);
      rows.push(r);
      o.log(`maglev size=${size} n=${n}: ${r.compileMs.toFixed(2)} ms, balance ${r.balance.toFixed(3)}, moved -1 ${r.movedOnRemove.toFixed(4)} +1 ${r.movedOnAdd.toFixed(4)} (1/N ${r.ideal.toFixed(4)})`);
    }
  }
  return rows;
}
