// The data plane made on a worker thread, so that the daemon's thread lists and translates the
// API's objects meanwhile, in two steps: the maps first (created and pinned, or kept from the pins,
// with their first config), which the daemon fills with its first sync while the verifier works on
// the program here (about a second, on the thread that loads it); then the program, loaded over
// those pins. The pins are the result. The caller holds the writer lock.
import { parentPort, workerData } from 'node:worker_threads';
import { Control } from '../dataplane/control.js';
import { KpError } from '../errors.js';

const o = workerData as { bpffs?: string; buckets: number };
try {
  const t0 = performance.now();
  const buckets = Control.createMaps({ bpffs: o.bpffs, buckets: o.buckets });
  parentPort!.postMessage({ maps: true, buckets, ms: performance.now() - t0 });
  const t1 = performance.now();
  const c = Control.open({ bpffs: o.bpffs, load: true, buckets, reload: false, upgrade: true });
  const migrated = c.dp.migrated;
  c.close();
  parentPort!.postMessage({ ok: true, ms: performance.now() - t1, migrated });
} catch (e) {
  const k = e as KpError;
  parentPort!.postMessage({ error: k.message, code: k.code ?? 'KP_ERR_BPF', details: k.details, log: k.log });
}
