// Where kpbpf pins things: <bpffs>/kpbpf, with bpffs mounted on demand.
import { existsSync, mkdirSync, statfsSync } from 'node:fs';
import koffi from 'koffi';
import { KpError, bpfError } from '../errors.js';
import { libcFns } from '../sys/libbpf.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_BPFFS = '/sys/fs/bpf';
export const PIN_SUBDIR = 'kpbpf';

/** libbpf 1.1 rewrites '.' in pin paths to '_', so a dotted path would pin somewhere else. */
export function assertNoDots(path: string, what = 'bpffs path'): void {
  if (path.includes('.')) {
    throw new KpError('KP_ERR_ARG', `${what} '${path}' contains '.': libbpf 1.1 would rewrite it to '_'; choose a path without dots`);
  }
}

export function isBpffs(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Mount a bpffs at dir (creating it) unless one is already there. Returns true if it mounted. */
export function ensureBpffs(dir: string): boolean {
  assertNoDots(dir);
  if (isBpffs(dir)) return false;
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (libcFns.mount('bpf', dir, 'bpf', 0, null) !== 0) throw bpfError('mount -t bpf', -koffi.errno(), dir);
  return true;
}

/** kpbpf's pin directory: <bpffs>/kpbpf, bpffs from the flag, else $KPBPF_BPFFS, else /sys/fs/bpf. */
export function pinRoot(opts: { bpffs?: string } = {}): string {
  const bpffs = (opts.bpffs ?? process.env.KPBPF_BPFFS ?? DEFAULT_BPFFS).replace(/\/+$/, '') || '/';
  assertNoDots(bpffs);
  return `${bpffs}/${PIN_SUBDIR}`;
}

/** Create pinDir inside a bpffs; refuse a directory that is not on one. */
export function preparePinDir(pinDir: string): void {
  assertNoDots(pinDir, 'pin directory');
  if (!existsSync(pinDir)) mkdirSync(pinDir, { recursive: true, mode: 0o700 });
  if (!isBpffs(pinDir)) {
    throw new KpError('KP_ERR_STATE', `${pinDir} is not on a bpffs: mount one (mount -t bpf bpf DIR) or pass --bpffs`);
  }
}
