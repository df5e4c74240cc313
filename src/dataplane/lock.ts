// One writer at a time: changes read the running state, then write maps from it, so two concurrent
// writers could allocate the same ids. A lock directory (mkdir is atomic) next to nothing in bpffs.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { KpError } from '../errors.js';

const LOCK_ROOT = '/run';
const WAIT_MS = Number(process.env.KPBPF_LOCK_WAIT_MS) || 10_000;
const POLL_MS = 50;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export interface WriterLock {
  path: string;
  release(): void;
}

export function lockPath(pinDir: string, root = LOCK_ROOT): string {
  return `${root}/kpbpf-${createHash('sha256').update(pinDir).digest('hex').slice(0, 12)}.lock`;
}

/** Take the writer lock of a pin directory, waiting up to 10 s; a dead holder's lock is taken over. */
export function lockWriter(pinDir: string, root = LOCK_ROOT): WriterLock {
  const path = lockPath(pinDir, root);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(`${path}/pid`, String(process.pid));
      return { path, release: () => rmSync(path, { recursive: true, force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(`${path}/pid`, 'utf8'));
    } catch {
      // being created or released right now
    }
    if (Number.isInteger(holder) && !alive(holder)) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new KpError('KP_ERR_STATE', `another kpbpf (pid ${holder}) is changing ${pinDir}; gave up after ${WAIT_MS / 1000} s (lock ${path})`);
    }
    sleepSync(POLL_MS);
  }
}
