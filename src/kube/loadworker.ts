// The program load (or its upgrade over the pins) on a worker thread, so that the daemon's thread
// lists and translates the API's objects meanwhile: the verifier holds the thread that loads for
// about a second, and this machine has two cores. The pins are the result: the daemon opens them
// when this is done. The caller holds the writer lock.
import { parentPort, workerData } from 'node:worker_threads';
import { Control } from '../dataplane/control.js';
import { KpError } from '../errors.js';

const o = workerData as { bpffs?: string; buckets: number };
try {
  const t0 = performance.now();
  const c = Control.open({ bpffs: o.bpffs, load: true, buckets: o.buckets, reload: false, upgrade: true });
  c.close();
  parentPort!.postMessage({ ok: true, ms: performance.now() - t0 });
} catch (e) {
  const k = e as KpError;
  parentPort!.postMessage({ error: k.message, code: k.code ?? 'KP_ERR_BPF', details: k.details, log: k.log });
}
