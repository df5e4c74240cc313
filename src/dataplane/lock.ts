// One writer at a time: changes read the running state, then write maps from it, so two concurrent
// writers could allocate the same ids. The lock is an abstract Unix socket name bound by the holder
// ("kpbpf-lock-<hash of the pin directory>"): binding it is atomic, the kernel frees it when the
// holder's process ends however it ends (no stale lock, no takeover race, no pid to check), and it is
// shared by every process of the network namespace, whatever their PID namespace or /run: the
// node's kpbpf commands and a DaemonSet's (hostNetwork) container see the same lock, as they see the
// same interfaces. The holder binds a second name that says who it is ("kpbpf-holder-<hash> daemon
// <words>", or "command" for a one-shot command), which others read from /proc/net/unix: a daemon's
// is refused at once, a command's waited for.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import koffi from 'koffi';
import { KpError } from '../errors.js';
import { libcFns } from '../sys/libbpf.js';

const WAIT_MS = Number(process.env.KPBPF_LOCK_WAIT_MS) || 10_000;
const POLL_MS = 50;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const EADDRINUSE = 98;
const SUN_PATH = 108;

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export interface WriterLock {
  /** the lock's abstract socket name (without the leading NUL) */
  path: string;
  release(): void;
}

const hashOf = (pinDir: string) => createHash('sha256').update(pinDir).digest('hex').slice(0, 12);

export function lockPath(pinDir: string): string {
  return `kpbpf-lock-${hashOf(pinDir)}`;
}

/** The holder's second name: "kpbpf-holder-<hash> <daemon|command> <words>". */
const holderPrefix = (pinDir: string) => `kpbpf-holder-${hashOf(pinDir)} `;

/** Bind an abstract Unix socket name: its fd, or undefined when another socket has it. */
function bindAbstract(name: string): number | undefined {
  const bytes = Buffer.from(name, 'utf8').subarray(0, SUN_PATH - 1);
  const addr = Buffer.alloc(2 + 1 + bytes.length);
  addr.writeUInt16LE(AF_UNIX, 0); // sun_path[0] = 0: the abstract namespace
  bytes.copy(addr, 3);
  const fd = libcFns.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new KpError('KP_ERR_STATE', `socket(AF_UNIX) for the writer lock: errno ${koffi.errno()}`);
  if ((libcFns.bind(fd, addr, addr.length) as number) === 0) return fd;
  const errno = koffi.errno();
  libcFns.close(fd);
  if (errno === EADDRINUSE) return undefined;
  throw new KpError('KP_ERR_STATE', `bind(@${name}) for the writer lock: errno ${errno}`);
}

/** Who holds the lock, as its second name says (undefined: not known, or released just now). */
function holderOf(pinDir: string): { daemon: boolean; words: string } | undefined {
  const prefix = `@${holderPrefix(pinDir)}`;
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      const at = line.indexOf(prefix);
      if (at < 0) continue;
      const rest = line.slice(at + prefix.length).trim();
      const space = rest.indexOf(' ');
      return { daemon: rest.slice(0, space) === 'daemon', words: rest.slice(space + 1) };
    }
  } catch {
    // no /proc/net/unix: the holder goes unnamed
  }
  return undefined;
}

/**
 * Take the writer lock of a pin directory, waiting up to 10 s (KPBPF_LOCK_WAIT_MS). `owner` marks a
 * long-running holder (the daemon): others are refused at once with its words.
 */
export function lockWriter(pinDir: string, _root?: string, owner?: string): WriterLock {
  const name = lockPath(pinDir);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const fd = bindAbstract(name);
    if (fd !== undefined) {
      // The words carry this process's pid as seen here (another PID namespace sees another number).
      const words = `${owner ?? `kpbpf ${process.argv.slice(2).filter((a) => !a.startsWith('-')).slice(0, 3).join(' ')}`} (pid ${process.pid})`;
      const ownerFd = bindAbstract(`${holderPrefix(pinDir)}${owner ? 'daemon' : 'command'} ${words.replace(/\s+/g, ' ')}`);
      let released = false;
      return {
        path: name,
        release: () => {
          if (released) return;
          released = true;
          if (ownerFd !== undefined) libcFns.close(ownerFd);
          libcFns.close(fd);
        },
      };
    }
    const held = holderOf(pinDir);
    if (held?.daemon) throw new KpError('KP_ERR_STATE', `${held.words} owns ${pinDir}: change its config file instead (it reloads on change and on SIGHUP), or stop it`);
    if (Date.now() > deadline) {
      throw new KpError('KP_ERR_STATE', `another kpbpf${held ? ` (${held.words})` : ''} is changing ${pinDir}; gave up after ${WAIT_MS / 1000} s (lock @${name} in this network namespace)`);
    }
    sleepSync(POLL_MS);
  }
}
