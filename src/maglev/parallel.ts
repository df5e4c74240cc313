// Maglev tables of a large batch off the caller's path: a full sync of 10k VIPs spent a third of its
// time building them. A helper thread builds the tables an apply will publish before their backends
// have ids (prefetch.ts), or a batch's second half while the caller builds the first; for the daemon
// it also reads and checks the config file while the program loads. The caller stays synchronous.
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { ConfigSource } from '../config/validate.js';
import type { PreloadReply } from './worker.js';
import { buildMaglevTable, checkBackends, checkTableSize, liveBackends } from './table.js';
import type { TableJob } from './worker.js';
import { cancelPrefetch, completePrefetch, makePrefetch, prefetchedFor, prefetchedTable, type MaglevTable, type Prefetch, type PrefetchJob } from './prefetch.js';

export { MappedTable, type MaglevTable, type PrefetchJob } from './prefetch.js';

export type { TableJob } from './worker.js';

/** Below this many tables a batch is built here: sending it costs more than it saves. */
export const PARALLEL_MIN_JOBS = 256;
const WAIT_MS = 20_000;
/** A live helper takes a request at once (what it may be busy with first is a warm-up or a prefetch
 * fill, well under a second); one that has not taken it by then is dead or stuck: given up. */
const PICKUP_MS = 5_000;
/** A request's flag (worker.ts): 0 posted, STARTED taken, DONE answered. */
export const STARTED = 2;
const DONE = 1;

let helper: Worker | null | undefined; // null: could not start, build everything here
let sharedBatches = 0;
let abandoned = 0;

/** How many batches the helper thread took a share of (tests check that it does). */
export const helperBatches = () => sharedBatches;
/** How many helper threads were given up for dead (tests check that one is). */
export const abandonedHelpers = () => abandoned;

/** Whether the helper answered the request whose flag this is: false (and the helper given up, a
 * new one started next time) when it did not take it within PICKUP_MS, or did not finish it. */
function waitHelper(flag: Int32Array): boolean {
  if (Atomics.wait(flag, 0, 0, PICKUP_MS) === 'timed-out') {
    abandonHelper();
    return false;
  }
  if (Atomics.load(flag, 0) === STARTED && Atomics.wait(flag, 0, STARTED, WAIT_MS) === 'timed-out') {
    abandonHelper();
    return false;
  }
  return Atomics.load(flag, 0) === DONE;
}

function abandonHelper(): void {
  abandoned++;
  void helper?.terminate();
  helper = undefined;
}

/** Tests: stop the helper thread as a crash would (the caller does not know). */
export async function killHelperForTests(): Promise<void> {
  await helper?.terminate();
}

function startHelper(): Worker | null {
  if (helper !== undefined) return helper;
  try {
    // Under the test runner the modules are .ts files; the worker inherits its loader flags.
    const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
    helper = new Worker(new URL(`./worker.${ext}`, import.meta.url));
    helper.unref(); // never keeps the process alive
    helper.on('error', () => (helper = null));
  } catch {
    helper = null;
  }
  return helper;
}

/**
 * Start the helper thread ahead of a large batch, warmed up on a few tables so that its share is
 * not built by cold code; returns at once.
 */
export function prepareMaglevHelper(): void {
  if (helper !== undefined) return;
  const w = startHelper();
  if (!w) return;
  const backends = Array.from({ length: 8 }, (_, i) => ({ id: i + 1, key: `warm-up ${i}` }));
  const { port1, port2 } = new MessageChannel();
  w.postMessage({ jobs: Array.from({ length: 64 }, () => ({ backends, size: 1021 })), done: new SharedArrayBuffer(4), reply: port2 }, [port2]);
  port1.unref();
  port1.on('message', () => port1.close());
}

let prefetch: { p: Prefetch; complete?: boolean } | undefined;
let prefetchHits = 0;

/** How many tables came from a prefetch (tests check that they do). */
export const prefetchedTables = () => prefetchHits;

/**
 * Have the helper thread build these tables now, while the caller goes on: buildMaglevTables takes
 * a table from here for a job with the same tag, backends (keys, weights) and size, whatever the
 * ids. Ends with endMaglevPrefetch. Jobs with a size that is not valid are left out (built, and
 * refused, as usual).
 */
export function prefetchMaglevTables(jobs: readonly PrefetchJob[]): void {
  endMaglevPrefetch();
  const w = jobs.length >= PARALLEL_MIN_JOBS ? startHelper() : null;
  if (!w) return;
  const valid = jobs.filter((j) => {
    try {
      checkTableSize(j.size);
      return true;
    } catch {
      return false;
    }
  });
  const p = makePrefetch(valid);
  w.postMessage({ prefetch: p.shared });
  prefetch = { p };
}

/** Whether tables are being built ahead (by prefetchMaglevTables or a config preload). */
export const hasMaglevPrefetch = (): boolean => prefetch !== undefined;

/** A config file being read and checked on the helper thread. */
export interface ConfigPreload {
  done: Int32Array;
  port: MessagePort;
}

/**
 * Read and check a config file on the helper thread, and build its tables there, while this thread
 * does something else (the daemon loads the BPF program meanwhile). undefined: no helper thread.
 */
export function startConfigPreload(path: string): ConfigPreload | undefined {
  const w = startHelper();
  if (!w) return undefined;
  const done = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  w.postMessage({ preload: { path, done, reply: port2 } }, [port2]);
  return { done: new Int32Array(done), port: port1 };
}

/**
 * The preloaded config (undefined when the helper gave none: read it here, which reports its
 * errors), with how long the helper took; its tables become the prefetch that the next apply uses.
 */
export function takeConfigPreload(p: ConfigPreload): { source: ConfigSource; bytes: Uint8Array; ms: number } | undefined {
  try {
    if (!waitHelper(p.done)) return undefined;
    const reply = receiveMessageOnPort(p.port)?.message as PreloadReply | undefined;
    if (!reply || 'error' in reply) return undefined;
    endMaglevPrefetch();
    prefetch = { p: { shared: reply.prefetch, byTag: new Map(reply.tags.map((t, i) => [t, i])) } };
    return { source: reply.source, bytes: reply.bytes, ms: reply.ms };
  } finally {
    p.port.close();
  }
}

/** Drop the prefetched tables (what the helper still builds of them stops after its table). */
export function endMaglevPrefetch(): void {
  if (prefetch) cancelPrefetch(prefetch.p);
  prefetch = undefined;
}

/** The jobs' tables that the prefetch holds (undefined where it does not). */
function fromPrefetch(jobs: readonly TableJob[]): (MaglevTable | undefined)[] | undefined {
  const pre = prefetch;
  if (!pre) return undefined;
  const found: (MaglevTable | undefined)[] = [];
  let hits = 0;
  for (const j of jobs) {
    const k = j.tag === undefined ? undefined : pre.p.byTag.get(j.tag);
    const live = k === undefined ? undefined : liveBackends(j.backends);
    if (k === undefined || !live || !prefetchedFor(pre.p, k, live, j.size)) {
      found.push(undefined);
      continue;
    }
    checkTableSize(j.size);
    checkBackends(j.backends); // as buildMaglevTable would
    // The first use finishes the prefetch: this thread builds what is left and waits for the rest.
    pre.complete ??= completePrefetch(pre.p, PICKUP_MS);
    if (!pre.complete) return undefined;
    found.push(prefetchedTable(pre.p, k, live));
    hits++;
  }
  prefetchHits += hits;
  return found;
}

/** The tables of `jobs`, in order (as buildMaglevTable each; it throws the same errors). */
export function buildMaglevTables(jobs: readonly TableJob[]): MaglevTable[] {
  const found = fromPrefetch(jobs);
  if (found) {
    const missing = jobs.filter((_, i) => !found[i]);
    if (!missing.length) return found as MaglevTable[];
    const built = buildInBatches(missing);
    let k = 0;
    return found.map((t) => t ?? built[k++]);
  }
  return buildInBatches(jobs);
}

function buildInBatches(jobs: readonly TableJob[]): Uint32Array[] {
  const w = jobs.length >= PARALLEL_MIN_JOBS ? startHelper() : null;
  if (!w) return jobs.map((j) => buildMaglevTable(j.backends, j.size));
  const half = jobs.length >> 1;
  const done = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  try {
    w.postMessage({ jobs: jobs.slice(half), done, reply: port2 }, [port2]);
    const mine = jobs.slice(0, half).map((j) => buildMaglevTable(j.backends, j.size));
    // A helper that died (or hangs) is given up: its half is built here.
    if (!waitHelper(new Int32Array(done))) return [...mine, ...jobs.slice(half).map((j) => buildMaglevTable(j.backends, j.size))];
    const reply = receiveMessageOnPort(port1)?.message as { tables: Uint32Array[] } | { error: string } | undefined;
    if (!reply) throw new Error('the Maglev helper thread answered nothing');
    if ('error' in reply) return jobs.map((j) => buildMaglevTable(j.backends, j.size)); // the same error, thrown here
    sharedBatches++;
    return [...mine, ...reply.tables];
  } finally {
    port1.close();
  }
}
