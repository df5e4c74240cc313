// Which cgroup v2 directory the socket hooks go on: --cgroup PATH, else $KPBPF_CGROUP, else the
// first cgroup2 mount (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one).
// Every socket in that cgroup's subtree, hostNetwork pods and the kubelet among them, is served.
import { readFileSync } from 'node:fs';
import { KpError } from '../errors.js';

/** The first cgroup2 mount point in a mount table (/proc/self/mounts format), or undefined. */
export function cgroup2Mount(mounts: string): string | undefined {
  for (const line of mounts.split('\n')) {
    const [, target, fstype] = line.split(' ');
    if (fstype === 'cgroup2' && target) return target.replace(/\\040/g, ' ');
  }
  return undefined;
}

export function defaultCgroupPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KPBPF_CGROUP) return env.KPBPF_CGROUP;
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    // no /proc: nothing to detect
  }
  const found = cgroup2Mount(mounts);
  if (!found) {
    throw new KpError('KP_ERR_ARG', 'cgroup: no cgroup v2 mount found here; give one with --cgroup PATH or KPBPF_CGROUP (e.g. /sys/fs/cgroup)');
  }
  return found;
}
