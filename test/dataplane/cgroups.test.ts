// Where the socket hooks go by default: $KPBPF_CGROUP, else the first cgroup2 mount.
import t from 'tap';
import { cgroup2Mount, defaultCgroupPath } from '../../src/dataplane/cgroups.js';

const HYBRID = [
  'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
  'tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0',
  'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0',
  'cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0',
].join('\n');

t.test('the first cgroup2 mount of a mount table', async (t) => {
  t.equal(cgroup2Mount(HYBRID), '/sys/fs/cgroup/unified', 'hybrid hierarchy: the unified mount');
  t.equal(cgroup2Mount('cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), '/sys/fs/cgroup', 'unified host');
  t.equal(cgroup2Mount('none /run/my\\040cg cgroup2 rw 0 0\n'), '/run/my cg', 'escaped spaces');
  t.equal(cgroup2Mount('cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n'), undefined, 'cgroup v1 only: none');
});

t.test('KPBPF_CGROUP wins over detection', async (t) => {
  t.equal(defaultCgroupPath({ KPBPF_CGROUP: '/run/kpbpf-cg' }), '/run/kpbpf-cg');
});
