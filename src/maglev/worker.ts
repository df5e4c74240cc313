// The Maglev helper thread of parallel.ts: builds the tables it is sent and posts them back, or
// takes its share of a prefetch (tables of positions, claimed one at a time with the caller).
import { parentPort, type MessagePort } from 'node:worker_threads';
import { buildMaglevTable, type MaglevBackend } from './table.js';
import { fillPrefetched, type PrefetchShared } from './prefetch.js';

export interface TableJob {
  backends: MaglevBackend[];
  size: number;
}

export interface WorkRequest {
  jobs: TableJob[];
  /** Int32Array [0]: set to 1 and notified when the reply is on `reply` */
  done: SharedArrayBuffer;
  reply: MessagePort;
}

parentPort?.on('message', (m: WorkRequest | { prefetch: PrefetchShared }) => {
  if ('prefetch' in m) {
    fillPrefetched(m.prefetch);
    return;
  }
  const { jobs, done, reply } = m;
  let out: { tables: Uint32Array[] } | { error: string };
  try {
    out = { tables: jobs.map((j) => buildMaglevTable(j.backends, j.size)) };
  } catch (e) {
    out = { error: (e as Error).message };
  }
  reply.postMessage(out, 'tables' in out ? out.tables.map((t) => t.buffer as ArrayBuffer) : []);
  const flag = new Int32Array(done);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
});
