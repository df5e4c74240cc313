// Shared setup of the tests that run build/kp.bpf.o with BPF_PROG_TEST_RUN: where the object is,
// the constants of the kernel and of bpf/kp_shared.h they check against, and CPU pinning (kp_flows
// is per-CPU and an XDP test run executes on the calling CPU).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import type { Test } from 'tap';
import { Control } from '../../src/dataplane/control.js';
import koffi from 'koffi';
import { KP_STAT_NAMES } from '../../src/dataplane/stats.js';
import { DEFAULT_OBJECT } from '../../src/loader/index.js';
import type { Config } from '../../src/maps/codecs.js';
import { DEFAULT_TIMEOUTS, timeoutSlots, type CtTimeouts } from '../../src/config/timeouts.js';
import { skipUnlessCi } from './ci.js';

export { BACKEND_STATE } from '../../src/dataplane/vips.js';

/** build/kp.bpf.o, the object the control plane loads by default. */
export const KP_OBJECT = DEFAULT_OBJECT;

/** enum xdp_action (linux/bpf.h). */
export const XDP = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;

export type KpStatName = Uppercase<(typeof KP_STAT_NAMES)[number]>;
/** enum kp_stat (bpf/kp_shared.h) by name without the KP_STAT_ prefix, e.g. KP_STAT.DNAT = 9. */
export const KP_STAT = Object.fromEntries(KP_STAT_NAMES.map((n, i) => [n.toUpperCase(), i])) as Record<KpStatName, number>;

/** bpf/kp_shared.h: never redirect, XDP_PASS after a rewrite (a test run has no FIB to use). */
export const KP_CONF_F_NO_FIB = 0x1;

const CPU_MASK_BYTES = 128; // cpu_set_t: 1024 CPUs

function loadAffinity() {
  const libc = koffi.load('libc.so.6');
  return {
    set: libc.func('int sched_setaffinity(int pid, size_t len, _In_ uint8_t *mask)'),
    getcpu: libc.func('int sched_getcpu(void)'),
  };
}
let affinity: ReturnType<typeof loadAffinity> | undefined;

/** Pins this thread to `cpu`; false if the kernel refuses (CPU offline or not allowed). */
export function pinToCpu(cpu: number): boolean {
  affinity ??= loadAffinity();
  const mask = Buffer.alloc(CPU_MASK_BYTES);
  mask[cpu >> 3] |= 1 << (cpu & 7);
  return affinity.set(0, mask.length, mask) === 0 && affinity.getcpu() === cpu;
}

/** Why the BPF tests cannot run here (not root, object not built), or undefined if they can.
 * `rootFor` says what the test needs root for. */
export function bpfSkipReason(rootFor = 'BPF_PROG_TEST_RUN and map creation need CAP_BPF/CAP_SYS_ADMIN'): string | undefined {
  if (process.getuid?.() !== 0) return skipUnlessCi(`needs root: ${rootFor}`);
  if (!existsSync(KP_OBJECT)) return skipUnlessCi(`${KP_OBJECT} is missing: run npm run build:bpf`);
  return undefined;
}

/** A kp_config for a test: the default timeouts (kube-proxy's), hash seed 1, no prefixes, no flags. */
export function testConfig(o: Partial<Config> & { timeouts?: Partial<CtTimeouts> } = {}): Config {
  const { timeouts, ...rest } = o;
  return { timeoutS: timeoutSlots({ ...DEFAULT_TIMEOUTS, ...timeouts }), hashSeed: 1, nVipPrefixes: 0, flags: 0, ...rest };
}

/**
 * A data plane loaded on a bpffs of its own (under /run, outside /sys), purged and unmounted when
 * the test `t` ends, also when it fails.
 */
export function testControl(t: Test, name: string, buckets = 1024): Control {
  const bpffs = `/run/kpbpf-${name}-${randomBytes(3).toString('hex')}`;
  let opened: Control | undefined;
  t.teardown(() => {
    try {
      opened?.purge();
    } finally {
      execFileSync('umount', [bpffs]);
      rmdirSync(bpffs);
    }
  });
  mkdirSync(bpffs, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  return (opened = Control.open({ bpffs, load: true, buckets, write: true }));
}
