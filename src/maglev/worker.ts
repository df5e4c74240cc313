// The Maglev helper thread of parallel.ts: builds the tables it is sent and posts them back, or
// takes its share of a prefetch (tables of positions, claimed one at a time with the caller).
import { parentPort, type MessagePort } from 'node:worker_threads';
import { buildMaglevTable, type MaglevBackend } from './table.js';
import { fillPrefetched, makePrefetch, type PrefetchShared } from './prefetch.js';
import { configTables } from './expected.js';
import { parseConfigText, readConfigText, type ConfigSource } from '../config/validate.js';

export interface TableJob {
  backends: MaglevBackend[];
  size: number;
  /** what the table is for (see prefetchMaglevTables) */
  tag?: string;
}

export interface WorkRequest {
  jobs: TableJob[];
  /** Int32Array [0]: set to 1 and notified when the reply is on `reply` */
  done: SharedArrayBuffer;
  reply: MessagePort;
}

/** A config file read and checked here: the source, its bytes, and the tables being built. */
export type PreloadReply = { source: ConfigSource; bytes: Uint8Array; ms: number; prefetch: PrefetchShared; tags: string[] } | { error: string };

interface PreloadRequest {
  path: string;
  done: SharedArrayBuffer;
  reply: MessagePort;
}

/** Says a request is taken (parallel.ts gives up a helper that does not take one at once). */
function taken(done: SharedArrayBuffer): void {
  const flag = new Int32Array(done);
  Atomics.store(flag, 0, 2);
  Atomics.notify(flag, 0);
}

function preload({ path, done, reply }: PreloadRequest): void {
  taken(done);
  const t0 = performance.now();
  let shared: PrefetchShared | undefined;
  try {
    const { text, name, bytes } = readConfigText(path);
    const source = parseConfigText(text, name);
    const p = makePrefetch(configTables(source.config.vips));
    shared = p.shared;
    reply.postMessage({ source, bytes, ms: performance.now() - t0, prefetch: p.shared, tags: [...p.byTag.keys()] } satisfies PreloadReply);
  } catch (e) {
    reply.postMessage({ error: (e as Error).message } satisfies PreloadReply); // the caller reads the file itself, and reports this
  }
  const flag = new Int32Array(done);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  if (shared) fillPrefetched(shared);
}

parentPort?.on('message', (m: WorkRequest | { prefetch: PrefetchShared } | { preload: PreloadRequest }) => {
  if ('prefetch' in m) {
    fillPrefetched(m.prefetch);
    return;
  }
  if ('preload' in m) {
    preload(m.preload);
    return;
  }
  const { jobs, done, reply } = m;
  taken(done);
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
