// Socket load balancing for the node's own sockets: the cgroup sock_addr programs of kp.bpf.o
// (bpf/kp_sock.h) attached to a cgroup v2 directory through bpf_link, pinned as
// <pinDir>/cglinks/cg<cgroup id>_<hook> so they outlive the process, as the XDP links do.
import { existsSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { KpError, bpfError } from '../errors.js';
import { check, closeFd, lb, LinkCreateOpts, openFd, opts } from '../sys/libbpf.js';

/** The hooks, their programs in kp.bpf.o and attach types (enum bpf_attach_type). */
export const SOCK_HOOKS = [
  { hook: 'connect4', prog: 'kp_sock_connect4', attachType: 10 },
  { hook: 'sendmsg4', prog: 'kp_sock_sendmsg4', attachType: 14 },
  { hook: 'recvmsg4', prog: 'kp_sock_recvmsg4', attachType: 19 },
  { hook: 'getpeername4', prog: 'kp_sock_getpeername4', attachType: 29 },
] as const;
export type SockHook = (typeof SOCK_HOOKS)[number]['hook'];
export type SockProgs = Record<SockHook, number>;

export const CGLINKS_SUBDIR = 'cglinks';
/** Pin of a hook's program, beside <pinDir>/prog (no dots: libbpf 1.1 rewrites them). */
export const sockProgPin = (hook: SockHook) => `prog_${hook}`;

/** A cgroup v2 directory's id (its inode number, which bpf_link_info reports). */
export function cgroupId(path: string): bigint {
  let st;
  try {
    st = statSync(path, { bigint: true });
  } catch {
    throw new KpError('KP_ERR_ARG', `cgroup: ${path} does not exist (a cgroup v2 directory, e.g. /sys/fs/cgroup)`);
  }
  if (!st.isDirectory()) throw new KpError('KP_ERR_ARG', `cgroup: ${path} is not a directory (a cgroup v2 directory, e.g. /sys/fs/cgroup)`);
  return st.ino;
}

const linkPin = (pinDir: string, id: bigint, hook: SockHook) => join(pinDir, CGLINKS_SUBDIR, `cg${id}_${hook}`);

export interface CgroupAttachment {
  cgroupId: string;
  hooks: SockHook[];
}

/** Attach every hook to the cgroup at path (all or nothing); hooks attached before stay as they are. */
export function attachCgroup(pinDir: string, progs: SockProgs, path: string): { cgroupId: string; already: boolean } {
  const id = cgroupId(path);
  const dir = join(pinDir, CGLINKS_SUBDIR);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const cgFd = openFd(path);
  const made: string[] = [];
  let already = true;
  try {
    for (const h of SOCK_HOOKS) {
      const pin = linkPin(pinDir, id, h.hook);
      if (existsSync(pin)) continue;
      already = false;
      const fd = lb.bpf_link_create(progs[h.hook], cgFd, h.attachType, opts(LinkCreateOpts, { flags: 0 }));
      if (fd < 0) throw bpfError('bpf_link_create', fd, `cgroup/${h.hook} on ${path} (a cgroup v2 directory?)`);
      try {
        check('bpf_obj_pin', lb.bpf_obj_pin(fd, pin), pin);
        made.push(pin);
      } finally {
        closeFd(fd);
      }
    }
  } catch (e) {
    for (const p of made) detachPinned(p);
    throw e;
  } finally {
    closeFd(cgFd);
  }
  return { cgroupId: String(id), already };
}

function detachPinned(pin: string): void {
  const fd = check('bpf_obj_get', lb.bpf_obj_get(pin), pin);
  try {
    const r = lb.bpf_link_detach(fd);
    if (r < 0 && r !== -67) throw bpfError('bpf_link_detach', r, pin); // ENOLINK: the cgroup is gone
  } finally {
    closeFd(fd);
  }
  unlinkSync(pin);
}

function pins(pinDir: string): { id: string; hook: SockHook; pin: string }[] {
  const dir = join(pinDir, CGLINKS_SUBDIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((f) => {
      const m = /^cg(\d+)_(\w+)$/.exec(f);
      return m ? [{ id: m[1], hook: m[2] as SockHook, pin: join(dir, f) }] : [];
    });
}

export function listCgroups(pinDir: string): CgroupAttachment[] {
  const by = new Map<string, SockHook[]>();
  for (const p of pins(pinDir)) by.set(p.id, [...(by.get(p.id) ?? []), p.hook]);
  return [...by].map(([cgroupId, hooks]) => ({ cgroupId, hooks }));
}

/** Detach the hooks of the cgroup at path (or of the cgroup id), or of every cgroup; returns the ids detached. */
export function detachCgroups(pinDir: string, which?: { path?: string; id?: string }): string[] {
  const id = which?.path ? String(cgroupId(which.path)) : which?.id;
  const chosen = pins(pinDir).filter((p) => id === undefined || p.id === id);
  if (id !== undefined && !chosen.length) throw new KpError('KP_ERR_STATE', `kpbpf is not attached to cgroup ${which?.path ?? id}`);
  for (const p of chosen) detachPinned(p.pin);
  return [...new Set(chosen.map((p) => p.id))];
}

/** Point every pinned cgroup link at the new programs (after a reload), without a gap. */
export function updateCgroupLinks(pinDir: string, progs: SockProgs): void {
  for (const p of pins(pinDir)) {
    const fd = check('bpf_obj_get', lb.bpf_obj_get(p.pin), p.pin);
    try {
      check('bpf_link_update', lb.bpf_link_update(fd, progs[p.hook], null), p.pin);
    } finally {
      closeFd(fd);
    }
  }
}
