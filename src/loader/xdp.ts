// XDP attach through bpf_link, pinned as <pinDir>/links/if<ifindex> so it outlives the process.
import { existsSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { KpError, bpfError } from '../errors.js';
import { linkInfo } from '../sys/info.js';
import {
  BPF_XDP,
  check,
  closeFd,
  ifIndexToName,
  ifNameToIndex,
  lb,
  LinkCreateOpts,
  opts,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
} from '../sys/libbpf.js';

export type XdpMode = 'native' | 'generic' | 'auto';
export const LINKS_SUBDIR = 'links';

export function ifindexOf(ifname: string): number {
  const idx = ifNameToIndex(ifname);
  if (idx === 0) throw new KpError('KP_ERR_NET', `interface '${ifname}' not found`);
  return idx;
}

export function linkPath(pinDir: string, ifindex: number): string {
  return join(pinDir, LINKS_SUBDIR, `if${ifindex}`);
}

function createLink(progFd: number, ifindex: number, flags: number): number {
  return lb.bpf_link_create(progFd, ifindex, BPF_XDP, opts(LinkCreateOpts, { flags }));
}

/** Attach; 'auto' tries native (driver) mode and falls back to generic (skb) mode. */
export function attachXdp(progFd: number, ifname: string, mode: XdpMode): { linkFd: number; mode: 'native' | 'generic' } {
  const ifindex = ifindexOf(ifname);
  if (mode !== 'generic') {
    const fd = createLink(progFd, ifindex, XDP_FLAGS_DRV_MODE);
    if (fd >= 0) return { linkFd: fd, mode: 'native' };
    if (mode === 'native') throw bpfError('bpf_link_create', fd, `XDP native mode on ${ifname}`);
  }
  const fd = createLink(progFd, ifindex, XDP_FLAGS_SKB_MODE);
  if (fd < 0) throw bpfError('bpf_link_create', fd, `XDP generic mode on ${ifname}`);
  return { linkFd: fd, mode: 'generic' };
}

export function pinLink(linkFd: number, path: string): void {
  const dir = path.slice(0, path.lastIndexOf('/'));
  if (dir && !existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  check('bpf_obj_pin', lb.bpf_obj_pin(linkFd, path), path);
}

export interface PinnedLink {
  ifindex: number;
  /** undefined when the interface no longer exists */
  ifname?: string;
  path: string;
}

export function listLinks(pinDir: string): PinnedLink[] {
  const dir = join(pinDir, LINKS_SUBDIR);
  if (!existsSync(dir)) return [];
  const out: PinnedLink[] = [];
  for (const f of readdirSync(dir).sort()) {
    const path = join(dir, f);
    const fd = check('bpf_obj_get', lb.bpf_obj_get(path), path);
    try {
      const ifindex = linkInfo(fd).xdpIfindex;
      out.push({ ifindex, ifname: ifindex ? ifIndexToName(ifindex) : undefined, path });
    } finally {
      closeFd(fd);
    }
  }
  return out;
}

/** Detach the pinned link at path and remove the pin. */
export function detachLink(path: string): void {
  const fd = check('bpf_obj_get', lb.bpf_obj_get(path), path);
  try {
    const r = lb.bpf_link_detach(fd);
    // ENOLINK: already detached (the interface went away); the pin still has to go.
    if (r < 0 && r !== -67) throw bpfError('bpf_link_detach', r, path);
  } finally {
    closeFd(fd);
  }
  unlinkSync(path);
}

export function detachXdp(pinDir: string, ifname: string): void {
  const path = linkPath(pinDir, ifindexOf(ifname));
  if (!existsSync(path)) throw new KpError('KP_ERR_STATE', `kpbpf is not attached to ${ifname} (no ${path})`);
  detachLink(path);
}

/** Point every pinned link at a new program (after a reload), without a gap in service. */
export function updateLinks(pinDir: string, progFd: number): void {
  for (const l of listLinks(pinDir)) {
    const fd = check('bpf_obj_get', lb.bpf_obj_get(l.path), l.path);
    try {
      check('bpf_link_update', lb.bpf_link_update(fd, progFd, null), l.path);
    } finally {
      closeFd(fd);
    }
  }
}
