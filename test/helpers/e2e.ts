// What every end-to-end test file needs: whether it can run here, a bpffs mounted outside
// `ip netns exec` (so every call sees the same pins), the kpbpf CLI run inside the node namespace,
// and a teardown that removes namespaces, children, pins and the mount even when a test fails.
import type { Test } from 'tap';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { createTopology, type Topology } from '../../src/testbed/topology.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const KPBPF = resolve(root, 'bin/kpbpf.js');
export const CLIENT = resolve(root, 'dist/testbed/client.js');

/** Why the end-to-end tier cannot run here, or undefined. */
export function e2eSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, XDP, bpffs)';
  for (const f of [KPBPF, resolve(root, 'dist/testbed/servers.js'), CLIENT, resolve(root, 'build/kp.bpf.o')]) {
    if (!existsSync(f)) return `${f} is missing: run npm run build first`;
  }
  try {
    execFileSync('ip', ['netns', 'list']);
  } catch {
    return 'iproute2 (ip netns) is not available';
  }
  return undefined;
}

/**
 * A file tap ended past its timeout is killed before its teardown runs (a signal handler would not
 * run either while a synchronous call holds the thread). Each harness leaves a note of what it made,
 * with its pid; the next harness removes what a dead one left: its namespaces (and what runs in them),
 * pins and bpffs mount.
 */
const NOTES = '/run/kpbpf-e2e-notes';

function reapDead(): void {
  if (!existsSync(NOTES)) return;
  const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
  for (const f of readdirSync(NOTES)) {
    let note: { pid: number; tag: string; bpffs: string } | undefined;
    try {
      const read = JSON.parse(readFileSync(`${NOTES}/${f}`, 'utf8')) as { pid: number; tag: string; bpffs: string };
      note = read;
      process.kill(read.pid, 0);
      continue; // its owner is alive
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue; // alive, another user's
    }
    if (note) {
      const tag = note.tag;
      for (const ns of namespaces.filter((n) => n.startsWith(`kp${tag}-`))) {
        const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      }
      try {
        execFileSync('umount', [note.bpffs], { stdio: 'ignore' });
      } catch {
        // not mounted
      }
      rmSync(note.bpffs, { recursive: true, force: true });
    }
    rmSync(`${NOTES}/${f}`, { force: true });
  }
}

/** A client process in the client namespace, its output collected as it comes. */
export interface Watched {
  out(): string;
  err(): string;
  /** Resolves once stderr holds `text` (or after `ms`); true if it does. */
  waitFor(text: string, ms?: number): Promise<boolean>;
  exited: Promise<void>;
}

export interface E2e {
  readonly topo: Topology;
  /** the private bpffs the kpbpf calls pin under */
  readonly bpffs: string;
  /** child processes to kill at teardown */
  readonly children: ChildProcess[];
  /** the kpbpf CLI in the node namespace; its stdout */
  kp(...args: string[]): string;
  kpJson(...args: string[]): any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** `node argv...` in the client namespace (or `where.ns`, inside cgroup `where.cgroup`), running on while the test goes on */
  watch(argv: string[], where?: { ns?: string; cgroup?: string }): Watched;
  /** `node -e script args` in the client namespace; the JSON of its last output line */
  inClient(script: string, ...args: string[]): any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** cmd run as a member of the cgroup v2 directory cg (the shell joins it, then execs cmd). */
export function inCgroup(cg: string, cmd: string[]): string[] {
  return ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, ...cmd];
}

/** Mounts a private bpffs and builds the topology now; everything goes at t.teardown. */
export function e2eHarness(t: Test, tag: string, backends: number, o: { ipv6?: boolean; gro?: boolean } = {}): E2e {
  const bpffs = `/run/kpbpf-${tag}-${randomBytes(3).toString('hex')}`;
  const note = `${NOTES}/${tag}-${process.pid}-${randomBytes(3).toString('hex')}.json`;
  let topo: Topology | undefined;
  const children: ChildProcess[] = [];
  const kp = (...args: string[]): string =>
    execFileSync('ip', ['netns', 'exec', topo!.node.ns, process.execPath, KPBPF, '--bpffs', bpffs, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (topo) {
      try {
        kp('detach', '--purge');
      } catch {
        // namespaces going away detach the links anyway
      }
      topo.destroy();
    }
    try {
      execFileSync('umount', [bpffs]);
    } catch {
      // not mounted
    }
    try {
      rmdirSync(bpffs);
    } catch {
      // already gone
    }
    rmSync(note, { force: true });
  };
  t.teardown(cleanup);
  try {
    reapDead();
    const nsTag = randomBytes(3).toString('hex');
    mkdirSync(NOTES, { recursive: true });
    writeFileSync(note, JSON.stringify({ pid: process.pid, tag: nsTag, bpffs }));
    mkdirSync(bpffs, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]); // outside `ip netns exec`, so every call sees it
    topo = createTopology({ backends, ipv6: o.ipv6, gro: o.gro, tag: nsTag });
  } catch (e) {
    cleanup(); // a throw here ends the file before tap's teardown could run
    throw e;
  }
  const made = topo;
  const watch = (argv: string[], where: { ns?: string; cgroup?: string } = {}): Watched => {
    const cmd = [process.execPath, ...argv];
    const child = made.spawn(where.ns ?? made.client.ns, where.cgroup ? inCgroup(where.cgroup, cmd) : cmd);
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    // 'close', not 'exit': its last lines may still be in the pipe when the process has exited.
    const exited = new Promise<void>((ok) => child.on('close', () => ok()));
    const waitFor = async (text: string, ms = 15_000) => {
      const deadline = Date.now() + ms;
      while (!err.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return err.includes(text);
    };
    return { out: () => out, err: () => err, waitFor, exited };
  };
  return {
    topo: made,
    bpffs,
    children,
    watch,
    kp,
    kpJson: (...args: string[]) => JSON.parse(kp('--json', ...args)),
    inClient: (script: string, ...args: string[]) => JSON.parse(made.exec(made.client.ns, [process.execPath, '-e', script, ...args]).trim().split('\n').pop()!),
  };
}
