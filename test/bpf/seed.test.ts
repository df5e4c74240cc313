// Nodes behind one ECMP router serve the same VIP: with the same config (conf.hash_seed among it),
// two data planes must pick the same backend for the same 5-tuple, as Maglev promises. Two
// "nodes" here are two data planes loaded from two private bpffs mounts, each configured by its
// own `apply` of the same file; packets go through BPF_PROG_TEST_RUN.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Control } from '../../src/dataplane/control.js';
import { parseConfig } from '../../src/config/validate.js';
import { testRun } from '../../src/loader/index.js';
import { buildPacket, parsePacket, TCP_SYN } from '../helpers/packet.js';
import { bpfSkipReason, KP_CONF_F_NO_FIB } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const VIP = { addr: '198.18.10.7', port: 443 };
const BACKENDS = Array.from({ length: 8 }, (_, i) => `198.18.20.${i + 1}`);
const SEED = 0xc0ffee11;
const TUPLES = 64;

const config = (seed: number) =>
  parseConfig({
    conf: { buckets: 1024, hash_seed: seed },
    vips: [{ prefix: `${VIP.addr}/32`, port: VIP.port, target_port: 8443, backends: BACKENDS }],
  });

const reason = skipUnlessCi(bpfSkipReason('bpffs mounts, BPF maps and BPF_PROG_TEST_RUN'));
if (reason) t.test('the same flow picks the same backend on every node', { skip: reason }, async () => {});
else run();

function run() {
  const nodes: { bpffs: string; control?: Control }[] = [];
  t.teardown(() => {
    for (const n of nodes) {
      try {
        n.control?.purge();
      } catch {
        // already gone
      }
      try {
        execFileSync('umount', [n.bpffs]);
      } catch {
        // not mounted
      }
      try {
        rmdirSync(n.bpffs);
      } catch {
        // not made
      }
    }
  });
  const node = (seed: number): Control => {
    const bpffs = `/run/kpbpf-seed-${randomBytes(3).toString('hex')}`;
    const n: { bpffs: string; control?: Control } = { bpffs };
    nodes.push(n);
    mkdirSync(bpffs, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
    const control = Control.open({ bpffs, load: true, buckets: 1024, write: true });
    n.control = control;
    control.apply(config(seed), { dryRun: false });
    // Rewritten packets stay in the test: no FIB lookup in this namespace.
    const c = control.dp.maps.config.lookup(0)!;
    control.dp.maps.config.update(0, { ...c, flags: c.flags | KP_CONF_F_NO_FIB });
    return control;
  };
  /** The backend address each tuple's first packet is sent to. */
  const picks = (c: Control, base: number): string[] =>
    Array.from({ length: TUPLES }, (_, i) => {
      const spec = { src: `198.18.0.${10 + (i % 50)}`, dst: VIP.addr, proto: 'tcp' as const, sport: base + i, dport: VIP.port, tcpFlags: TCP_SYN };
      return parsePacket(testRun(c.dp.progFd, buildPacket(spec)).data).dst;
    });

  t.test('two data planes applied the same config pick the same backend for every 5-tuple', async (t) => {
    const a = node(SEED);
    const b = node(SEED);
    t.equal(a.conf().hashSeed, SEED, 'node A runs the configured seed');
    t.equal(b.conf().hashSeed, SEED, 'node B runs the configured seed');
    const pa = picks(a, 40000);
    const pb = picks(b, 40000);
    t.same(pb, pa, 'every tuple: the same backend on both nodes');
    t.ok(new Set(pa).size >= 4, `the tuples spread over the backends (${new Set(pa).size} of ${BACKENDS.length})`);

    // Another seed on B: new connections are picked differently (fresh tuples, so no record decides).
    b.apply(config((SEED ^ 0x5a5a5a5a) >>> 0), { dryRun: false });
    t.equal(b.conf().hashSeed, (SEED ^ 0x5a5a5a5a) >>> 0);
    const pa2 = picks(a, 41000);
    const pb2 = picks(b, 41000);
    t.ok(pa2.some((x, i) => x !== pb2[i]), 'with another seed some tuples land elsewhere');
    // A connection made before the seed changed keeps its backend.
    t.same(picks(b, 40000), pb, 'connections made under the old seed keep their backends');
  });

  t.test('a config without hash_seed keeps the running seed', async (t) => {
    const a = node(SEED);
    a.apply(parseConfig({ conf: { buckets: 1024 }, vips: [{ prefix: `${VIP.addr}/32`, port: VIP.port, target_port: 8443, backends: BACKENDS }] }), { dryRun: false });
    t.equal(a.conf().hashSeed, SEED);
  });
}
