// What an interface needs so that the kernel takes what the data path hands it with XDP_PASS. A
// masqueraded or node-port packet, a reply to one, a NAT64 packet and a hairpin connection all leave
// XDP with a source that is one of the node's own addresses; IPv4 drops such a packet as a martian
// unless the interface accepts local sources (accept_local), and strict reverse-path filtering
// drops it too (a local source's route is not through that interface), as it drops a reply whose
// source is now a cluster IP with no route back through it. So the attach turns accept_local on and
// a strict rp_filter to loose (2: any route will do; the effective value is the larger of the
// interface's and conf/all's, so 2 is loose whatever all says), and records what was there, to
// put back at the detach.
//
// The record is a second pin of the interface's XDP link, named for what it holds
// (<pinDir>/ifsysctl/if<ifindex>-<key>-<old value>): it lives exactly as long as the attachment's
// own pin, in the same bpffs, across restarts of kpbpf and of its container.
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KpError } from '../errors.js';
import { check, lb } from '../sys/libbpf.js';

export const IFSYSCTL_SUBDIR = 'ifsysctl';

export type IfSysctl = 'accept_local' | 'rp_filter';

export interface SysctlChange {
  key: IfSysctl;
  from: number;
  to: number;
}

/** Where net's sysctls are: a container whose /proc/sys is read-only mounts the host's elsewhere
 * (deploy/kubernetes: /host/proc/sys/net, as Cilium's agent does). */
const procSysNet = () => process.env.KPBPF_PROC_SYS_NET ?? '/proc/sys/net';
const path = (ifname: string, key: string) => `${procSysNet()}/ipv4/conf/${ifname}/${key}`;

function read(ifname: string, key: string): number | undefined {
  try {
    return Number(readFileSync(path(ifname, key), 'utf8').trim());
  } catch {
    return undefined; // no IPv4 configuration on it (or no such interface any more)
  }
}

class ReadOnly extends Error {}

function write(ifname: string, key: string, value: number): void {
  try {
    writeFileSync(path(ifname, key), `${value}\n`);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') throw new ReadOnly(`${path(ifname, key)}: ${code}`);
    throw new KpError('KP_ERR_NET', `cannot set net.ipv4.conf.${ifname}.${key}=${value}: ${(e as Error).message}`);
  }
}

/** What the interface needs changed (nothing when it has it already). */
export function neededChanges(ifname: string): SysctlChange[] {
  const out: SysctlChange[] = [];
  const acceptLocal = read(ifname, 'accept_local');
  if (acceptLocal === 0) out.push({ key: 'accept_local', from: 0, to: 1 });
  const rp = read(ifname, 'rp_filter');
  const all = read('all', 'rp_filter') ?? 0;
  if (rp !== undefined && Math.max(rp, all) === 1) out.push({ key: 'rp_filter', from: rp, to: 2 });
  return out;
}

export function describeChange(c: SysctlChange): string {
  return `${c.key} ${c.from} -> ${c.to}`;
}

/**
 * Make the changes on ifname and record each with a pin of the interface's link (linkFd). All or
 * nothing: a failure puts back what this call changed and throws, except where the settings are
 * read-only (a container without the host's /proc/sys/net): then nothing is changed and the
 * returned reason says why, for the caller to report.
 */
export function applyChanges(pinDir: string, ifindex: number, ifname: string, linkFd: number, changes: SysctlChange[]): string | undefined {
  try {
    if (changes.length) mkdirSync(join(pinDir, IFSYSCTL_SUBDIR), { recursive: true, mode: 0o700 });
    for (const c of changes) {
      // The record first: a crash between the two leaves a record of the value that is still there.
      const p = join(pinDir, IFSYSCTL_SUBDIR, `if${ifindex}-${c.key}-${c.from}`);
      if (!existsSync(p)) check('bpf_obj_pin', lb.bpf_obj_pin(linkFd, p), p);
      write(ifname, c.key, c.to);
    }
    return undefined;
  } catch (e) {
    restoreChanges(pinDir, ifindex, ifname);
    if (e instanceof ReadOnly) return `read-only (${e.message}; set KPBPF_PROC_SYS_NET to a writable mount of the host's /proc/sys/net)`;
    throw e;
  }
}

/** Put back what the attach changed on the interface (if it still exists) and drop the records. */
export function restoreChanges(pinDir: string, ifindex: number, ifname: string | undefined): SysctlChange[] {
  const dir = join(pinDir, IFSYSCTL_SUBDIR);
  if (!existsSync(dir)) return [];
  const restored: SysctlChange[] = [];
  for (const f of readdirSync(dir)) {
    const m = /^if(\d+)-(accept_local|rp_filter)-(\d+)$/.exec(f);
    if (!m || Number(m[1]) !== ifindex) continue;
    const key = m[2] as IfSysctl;
    const from = Number(m[3]);
    const now = ifname ? read(ifname, key) : undefined;
    if (ifname && now !== undefined && now !== from) {
      try {
        write(ifname, key, from);
        restored.push({ key, from: now, to: from });
      } catch (e) {
        if (!(e instanceof ReadOnly)) throw e; // the record stays: a later detach or purge tries again
        continue;
      }
    }
    unlinkSync(join(dir, f));
  }
  return restored;
}

/** Records of interfaces no longer attached (a crash between a detach and its restore). */
export function recordedIfindexes(pinDir: string): number[] {
  const dir = join(pinDir, IFSYSCTL_SUBDIR);
  if (!existsSync(dir)) return [];
  return [...new Set(readdirSync(dir).flatMap((f) => /^if(\d+)-/.exec(f)?.[1] ?? []).map(Number))];
}
