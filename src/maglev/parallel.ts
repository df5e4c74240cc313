// Maglev tables of a large batch built on two threads: a full sync of 10k VIPs spends a third of
// its time here. The caller stays synchronous: it builds its share, then waits for the helper's.
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { buildMaglevTable } from './table.js';
import type { TableJob } from './worker.js';

export type { TableJob } from './worker.js';

/** Below this many tables a batch is built here: sending it costs more than it saves. */
export const PARALLEL_MIN_JOBS = 256;
const WAIT_MS = 60_000;

let helper: Worker | null | undefined; // null: could not start, build everything here
let sharedBatches = 0;

/** How many batches the helper thread took a share of (tests check that it does). */
export const helperBatches = () => sharedBatches;

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

/** The tables of `jobs`, in order (as buildMaglevTable each; it throws the same errors). */
export function buildMaglevTables(jobs: readonly TableJob[]): Uint32Array[] {
  const w = jobs.length >= PARALLEL_MIN_JOBS ? startHelper() : null;
  if (!w) return jobs.map((j) => buildMaglevTable(j.backends, j.size));
  const half = jobs.length >> 1;
  const done = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  try {
    w.postMessage({ jobs: jobs.slice(half), done, reply: port2 }, [port2]);
    const mine = jobs.slice(0, half).map((j) => buildMaglevTable(j.backends, j.size));
    if (Atomics.wait(new Int32Array(done), 0, 0, WAIT_MS) === 'timed-out') throw new Error(`the Maglev helper thread gave no answer within ${WAIT_MS} ms`);
    const reply = receiveMessageOnPort(port1)?.message as { tables: Uint32Array[] } | { error: string } | undefined;
    if (!reply) throw new Error('the Maglev helper thread answered nothing');
    if ('error' in reply) return jobs.map((j) => buildMaglevTable(j.backends, j.size)); // the same error, thrown here
    sharedBatches++;
    return [...mine, ...reply.tables];
  } finally {
    port1.close();
  }
}
