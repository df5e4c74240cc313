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

/**
 * Take the writer lock of a pin directory, waiting up to 10 s; a dead holder's lock is taken over.
 * `owner` marks a long-running holder (the daemon): others are refused at once with its words.
 */
export function lockWriter(pinDir: string, root = LOCK_ROOT, owner?: string): WriterLock {
  const path = lockPath(pinDir, root);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(`${path}/pid`, String(process.pid));
      if (owner) writeFileSync(`${path}/owner`, owner);
      return { path, release: () => rmSync(path, { recursive: true, force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    let holderOwner = '';
    try {
      holder = Number(readFileSync(`${path}/pid`, 'utf8'));
      holderOwner = readFileSync(`${path}/owner`, 'utf8');
    } catch {
      // being created or released right now, or a command's lock (no owner)
    }
    if (Number.isInteger(holder) && !alive(holder)) {
      rmSync(path, { recursive: true, force: true });
      continue;
    }
    if (holderOwner) throw new KpError('KP_ERR_STATE', `${holderOwner} (pid ${holder}) owns ${pinDir}: change its config file instead (it reloads on change and on SIGHUP), or stop it`);
    if (Date.now() > deadline) {
      throw new KpError('KP_ERR_STATE', `another kpbpf (pid ${holder}) is changing ${pinDir}; gave up after ${WAIT_MS / 1000} s (lock ${path})`);
    }
    sleepSync(POLL_MS);
  }
}
