// A measurement, not a test: ns/packet of the established-flow DNAT path of two builds of
// kp.bpf.o in one process (e.g. before/after a data plane change), for complete and
// CHECKSUM_PARTIAL packets. Under tap (npx tap test/bpf) it runs a short smoke of the harness.
// The backend is the VIP itself, so the DNAT is idempotent and the kernel's `repeat` re-runs the
// same path on the rewritten packet; kp_vip_stats.existing_pkts proves every run took it.
//   node --no-warnings --loader @isaacs/ts-node-temp-fork-for-pr-2009/esm test/bpf/cost.ts OLD.o [NEW.o]
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addRecords } from '../../src/maps/map.js';
import { buildPacket, IPPROTO_TCP, TCP_ACK, type PacketSpec } from '../helpers/packet.js';
import { testConfig, BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, pinToCpu } from '../helpers/bpf.js';

const UNDER_TAP = process.env.TAP === '1';
const REPEAT = UNDER_TAP ? 1000 : 200_000;
const ROUNDS = UNDER_TAP ? 1 : 7;
const VIP = { id: 1, addr: '198.18.10.1', port: 80 };

function setup(path: string): Dataplane {
  const dp = loadDataplane({ objectPath: path, buckets: 1024 });
  dp.maps.config.update(0, testConfig({ flags: KP_CONF_F_NO_FIB }));
  dp.maps.vips.update({ addr: VIP.addr, port: VIP.port, proto: IPPROTO_TCP }, { id: VIP.id, tableLen: 7, flags: 0, targetPort: 0 });
  dp.maps.backends.update(1, { addr: VIP.addr, port: VIP.port, state: BACKEND_STATE.active, gen: 1, vipId: VIP.id, weight: 1 });
  dp.setMaglevTable(VIP.id, Array(7).fill(1));
  return dp;
}

function nsPerPacket(dp: Dataplane, frame: Buffer): number {
  testRun(dp.progFd, frame); // creates the flow
  const before = dp.maps.vipStats.sum(VIP.id, addRecords)!.existingPkts;
  const r = testRun(dp.progFd, frame, { repeat: REPEAT });
  const after = dp.maps.vipStats.sum(VIP.id, addRecords)!.existingPkts;
  if (after - before !== BigInt(REPEAT)) throw new Error(`only ${after - before} of ${REPEAT} runs took the established path`);
  return r.durationNs;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function measure(oldPath: string, newPath: string, log: (line: string) => void): void {
  if (!pinToCpu(0)) throw new Error('sched_setaffinity(CPU 0) failed');
  const builds = { old: setup(oldPath), new: setup(newPath) };
  let sport = 40000;
  const pkt = (len: number, partial: boolean): Buffer => {
    const spec: PacketSpec = { src: '198.18.0.10', dst: VIP.addr, proto: 'tcp', sport: sport++, dport: VIP.port, tcpFlags: TCP_ACK, payload: Buffer.alloc(len - 54, 0x5a), l4Partial: partial };
    return buildPacket(spec);
  };
  const cases = [
    { name: 'complete, 64 B', len: 64, partial: false },
    { name: 'complete, 1514 B', len: 1514, partial: false },
    { name: 'partial, 64 B', len: 64, partial: true },
    { name: 'partial, 1514 B', len: 1514, partial: true },
  ];
  try {
    log(`ns/packet, median of ${ROUNDS} rounds of repeat=${REPEAT}, CPU 0, established flow, idempotent DNAT`);
    for (const c of cases) {
      const samples: Record<string, number[]> = { old: [], new: [] };
      const frames = { old: pkt(c.len, c.partial), new: pkt(c.len, c.partial) };
      for (let i = 0; i < ROUNDS; i++) {
        for (const b of ['old', 'new'] as const) samples[b].push(nsPerPacket(builds[b], frames[b]));
      }
      log(`${c.name.padEnd(18)} old ${median(samples.old).toString().padStart(4)}  new ${median(samples.new).toString().padStart(4)}`);
    }
  } finally {
    for (const dp of Object.values(builds)) dp.close();
  }
}

if (UNDER_TAP) {
  const skip = bpfSkipReason('BPF_PROG_TEST_RUN') ?? false;
  t.test('cost harness: every repeat takes the established DNAT path', { skip }, async (t) => {
    t.doesNotThrow(() => measure(KP_OBJECT, KP_OBJECT, (l) => t.comment(l)));
  });
} else {
  const [oldPath, newPath] = [process.argv[2], process.argv[3] ?? KP_OBJECT];
  if (!oldPath) throw new Error('usage: cost.ts OLD.bpf.o [NEW.bpf.o]');
  measure(oldPath, newPath, console.log);
}
