// Stickiness across CPUs: kp_flows is per-CPU, so a flow whose packets move to another CPU finds
// an empty or stale slot there. The program must adopt the most recent valid slot of another CPU
// (bpf_map_lookup_percpu_elem) rather than re-select through Maglev. XDP's BPF_PROG_TEST_RUN
// runs on the calling CPU, so each packet is sent after pinning this thread to a chosen CPU.
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import * as codecs from '../../src/maps/codecs.js';
import { addRecords } from '../../src/maps/map.js';
import { flowHash, maglevSlot } from '../../src/maglev/flow-hash.js';
import { buildPacket, IPPROTO_TCP, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, pinToCpu, XDP } from '../helpers/bpf.js';

const SEED = 0x5eed1234;
const TABLE_LEN = 7;
const CLIENT = '198.18.0.10';
const VIP = { id: 1, addr: '198.18.10.1', port: 80 };
const BACKENDS = [
  { id: 1, addr: '198.18.20.1', port: 8080 },
  { id: 2, addr: '198.18.20.2', port: 8080 },
];

function skipReason(): string | undefined {
  return bpfSkipReason() ?? (pinToCpu(1) ? undefined : 'needs a second online CPU (CPU 1) to move a flow between CPUs');
}

const syn = (sport: number): PacketSpec => ({ src: CLIENT, dst: VIP.addr, proto: 'tcp', sport, dport: VIP.port, tcpFlags: TCP_SYN, seq: 1000 });
const ack = (sport: number): PacketSpec => ({ ...syn(sport), tcpFlags: TCP_ACK, seq: 1001, ack: 5001, payload: Buffer.from('data') });
const keyOf = (sport: number): codecs.FlowKey => ({ saddr: CLIENT, daddr: VIP.addr, sport, dport: VIP.port, proto: IPPROTO_TCP });

/** A source port whose new flow Maglev sends to `want` under `table`. */
function portFor(table: number[], want: number, from: number): number {
  for (let sport = from; sport < from + 1000; sport++) {
    if (table[maglevSlot(flowHash(codecs.flowKey.encode(keyOf(sport)), SEED), TABLE_LEN)] === want) return sport;
  }
  throw new Error(`no source port maps to backend ${want}`);
}

function setup(dp: Dataplane, flowTimeoutNs = 0n): void {
  dp.maps.config.update(0, { flowTimeoutNs, hashSeed: SEED, nVipPrefixes: 0, flags: KP_CONF_F_NO_FIB });
  dp.maps.vips.update({ addr: VIP.addr, port: VIP.port, proto: IPPROTO_TCP }, { id: VIP.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  for (const b of BACKENDS) setGen(dp, b.id, 1);
}

function setGen(dp: Dataplane, id: number, gen: number): void {
  const b = BACKENDS[id - 1];
  dp.maps.backends.update(b.id, { addr: b.addr, port: b.port, state: BACKEND_STATE.active, gen, vipId: VIP.id, weight: 1 });
}

interface Sent {
  backend: string;
  first: bigint;
  existing: bigint;
}

/** Sends one packet on `cpu`; returns where it went and the per-VIP counter deltas. */
function sendOn(t: Test, dp: Dataplane, cpu: number, p: PacketSpec): Sent {
  t.ok(pinToCpu(cpu), `running on CPU ${cpu}`);
  const before = dp.maps.vipStats.sum(VIP.id, addRecords)!;
  const res = testRun(dp.progFd, buildPacket(p));
  const after = dp.maps.vipStats.sum(VIP.id, addRecords)!;
  t.equal(res.retval, XDP.PASS, 'verdict XDP_PASS');
  t.same(verifyChecksums(res.data), { ip: true, l4: true }, 'checksums valid after DNAT');
  return { backend: parsePacket(res.data).dst, first: after.firstPkts - before.firstPkts, existing: after.existingPkts - before.existingPkts };
}

const reason = skipReason();
if (reason) {
  t.skip(`per-CPU flow stickiness: ${reason}`, async () => {});
} else {
  const dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  const ncpus = dp.maps.flows.ncpus;
  const toward1 = [1, 1, 1, 1, 1, 1, 1];
  const toward2 = [2, 2, 2, 2, 2, 2, 2];

  t.test('a flow moved from CPU 0 to CPU 1 keeps its backend after the Maglev table changed', async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40001;
    const a = sendOn(t, dp, 0, syn(sport));
    t.match(a, { backend: BACKENDS[0].addr, first: 1n, existing: 0n }, 'first packet on CPU 0 goes to backend 1');
    dp.setMaglevTable(VIP.id, toward2); // Maglev alone would now pick backend 2
    const b = sendOn(t, dp, 1, ack(sport));
    t.match(b, { backend: BACKENDS[0].addr, first: 0n, existing: 1n }, 'next packet on CPU 1 stays on backend 1, counted existing');
    const slots = dp.maps.flows.lookup(keyOf(sport))!;
    t.equal(slots[1].backendId, 1, "CPU 1's slot adopted backend 1");
    t.equal(slots[1].backendGen, 1, 'with its gen');
    const c = sendOn(t, dp, 1, ack(sport));
    t.match(c, { backend: BACKENDS[0].addr, existing: 1n }, 'a third packet on CPU 1 uses its own slot');
  });

  t.test('a flow whose backend was flushed (gen bump) re-selects on the other CPU', async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40002;
    t.match(sendOn(t, dp, 0, syn(sport)), { backend: BACKENDS[0].addr, first: 1n });
    setGen(dp, 1, 2);
    dp.setMaglevTable(VIP.id, toward2);
    t.match(sendOn(t, dp, 1, ack(sport)), { backend: BACKENDS[1].addr, first: 1n, existing: 0n }, 'stale slot not adopted');
    setGen(dp, 1, 1);
  });

  t.test("another CPU's slot idle past the timeout is not adopted", async (t) => {
    setup(dp, 30_000_000n);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = 40003;
    t.match(sendOn(t, dp, 0, syn(sport)), { backend: BACKENDS[0].addr, first: 1n });
    await sleep(150);
    dp.setMaglevTable(VIP.id, toward2);
    t.match(sendOn(t, dp, 1, ack(sport)), { backend: BACKENDS[1].addr, first: 1n, existing: 0n }, 'expired slot not adopted');
  });

  t.test("a stale local slot (old gen) is replaced by another CPU's valid slot", async (t) => {
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = portFor(toward1, 1, 40100);
    // CPU 0 chose backend 2 (valid); CPU 1 still remembers backend 1 at a gen since flushed.
    setGen(dp, 1, 2);
    const slots: codecs.Flow[] = Array.from({ length: ncpus }, () => ({ backendId: 0, backendGen: 0, lastSeenNs: 0n, revSeenNs: 0n }));
    slots[0] = { backendId: 2, backendGen: 1, lastSeenNs: 1000n, revSeenNs: 1000n };
    slots[1] = { backendId: 1, backendGen: 1, lastSeenNs: 2000n, revSeenNs: 2000n };
    dp.maps.flows.update(keyOf(sport), slots);
    t.match(sendOn(t, dp, 1, ack(sport)), { backend: BACKENDS[1].addr, first: 0n, existing: 1n }, "adopted CPU 0's backend 2");
    t.equal(dp.maps.flows.lookup(keyOf(sport))![1].backendId, 2, "CPU 1's slot now names backend 2");
    setGen(dp, 1, 1);
  });

  t.test('with several other CPUs, the most recently seen valid slot wins', async (t) => {
    if (ncpus < 3) {
      t.skip(`needs 3 possible CPUs to hold two candidate slots besides the running one; this machine has ${ncpus}`, async () => {});
      return;
    }
    setup(dp);
    dp.setMaglevTable(VIP.id, toward1);
    const sport = portFor(toward1, 1, 40200);
    const slots: codecs.Flow[] = Array.from({ length: ncpus }, () => ({ backendId: 0, backendGen: 0, lastSeenNs: 0n, revSeenNs: 0n }));
    slots[0] = { backendId: 1, backendGen: 1, lastSeenNs: 1000n, revSeenNs: 1000n };
    slots[2] = { backendId: 2, backendGen: 1, lastSeenNs: 3000n, revSeenNs: 3000n };
    dp.maps.flows.update(keyOf(sport), slots);
    t.match(sendOn(t, dp, 1, ack(sport)), { backend: BACKENDS[1].addr, existing: 1n }, 'the newer slot (backend 2) wins');
  });
}
