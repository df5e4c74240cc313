// Runs build/kp.bpf.o with BPF_PROG_TEST_RUN on crafted packets, as a fixture table in Katran's
// form: description, setup, input packet, expected verdict, expected output bytes (built from
// fields by test/helpers/packet.ts), expected counter deltas. Fixtures run in order on one data
// plane: later ones rely on flows that earlier ones created.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import * as codecs from '../../src/maps/codecs.js';
import { addRecords, addU64 } from '../../src/maps/map.js';
import { flowHash, maglevSlot } from '../../src/maglev/flow-hash.js';
import {
  buildPacket,
  ethernet,
  ETH_P_ARP,
  icmpError,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_SYN,
  verifyChecksums,
  type PacketSpec,
} from '../helpers/packet.js';
import { BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, pinToCpu, testConfig, XDP, type KpStatName } from '../helpers/bpf.js';

const SEED = 0x5eed1234;
const LO_IFINDEX = 1;

// The counters every fixture checks; the reserved DROP_TTL is left out.
const ALL_STATS = [
  'PASS_NOT_IP',
  'PASS_NOT_L4',
  'PASS_NO_MATCH',
  'PASS_FRAGMENT',
  'DROP_MALFORMED',
  'DROP_NO_BACKEND',
  'TX_REDIRECT',
  'TX_PASS',
  'DNAT',
  'SNAT',
  'PASS_MALFORMED',
  'REJECT',
  'CT_LOOSE',
  'CT_REMAP',
  'DROP_CT_CLASH',
  'CT_STALE',
] as const satisfies readonly KpStatName[];
type StatName = (typeof ALL_STATS)[number];

const CLIENT = '198.18.0.10';
const MAC_CLIENT = '02:00:00:00:00:0a';
const MAC_NODE = '02:00:00:00:00:01';

interface VipDef {
  id: number;
  addr: string;
  port: number;
  proto: number;
  prefixLen?: number;
}
interface BackendDef {
  id: number;
  addr: string;
  port: number;
  vipId: number;
}
const TABLE_LEN = 7; // a small prime: a test can predict every slot
/** Longer than a 1 s timeout on the coarse clock (a tick of up to 4 ms, plus scheduling). */
const IDLE_MS = 1200;
const VIP_TCP: VipDef = { id: 1, addr: '198.18.10.1', port: 80, proto: IPPROTO_TCP };
const VIP_UDP: VipDef = { id: 2, addr: '198.18.10.2', port: 53, proto: IPPROTO_UDP };
const VIP_EMPTY: VipDef = { id: 3, addr: '198.18.10.3', port: 80, proto: IPPROTO_TCP };
const VIP_PFX: VipDef = { id: 4, addr: '198.18.64.0', prefixLen: 24, port: 443, proto: IPPROTO_TCP };
const BACKENDS: BackendDef[] = [
  { id: 1, addr: '198.18.20.1', port: 8080, vipId: 1 },
  { id: 2, addr: '198.18.20.2', port: 8080, vipId: 1 },
  { id: 3, addr: '198.18.20.3', port: 5353, vipId: 2 },
  { id: 4, addr: '198.18.20.4', port: 8443, vipId: 4 },
  { id: 5, addr: '198.18.20.5', port: 8080, vipId: 1 },
];
const be = (id: number): BackendDef => BACKENDS.find((b) => b.id === id)!;

// ---- expected state, as the control plane would write it -------------------------------

const tables = new Map<number, number[]>();

function setConfig(dp: Dataplane, c: Parameters<typeof testConfig>[0]): void {
  dp.maps.config.update(0, testConfig({ hashSeed: SEED, nVipPrefixes: 1, flags: KP_CONF_F_NO_FIB, ...c }));
}

function setBackend(dp: Dataplane, b: BackendDef, state: number, gen: number): void {
  dp.maps.backends.update(b.id, { addr: b.addr, port: b.port, state, gen, vipId: b.vipId, weight: 1 });
}

function setTable(dp: Dataplane, vipId: number, slots: number[]): void {
  tables.set(vipId, slots);
  dp.setMaglevTable(vipId, slots);
}

function setup(dp: Dataplane): void {
  setConfig(dp, {});
  for (const v of [VIP_TCP, VIP_UDP, VIP_EMPTY]) {
    dp.maps.vips.update({ addr: v.addr, port: v.port, proto: v.proto }, { id: v.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  }
  dp.maps.vipPfx.update(
    { len128: 96 + VIP_PFX.prefixLen!, proto: VIP_PFX.proto, port: VIP_PFX.port, addr: VIP_PFX.addr },
    { id: VIP_PFX.id, tableLen: TABLE_LEN, flags: 1, targetPort: 0 },
  );
  for (const b of BACKENDS) setBackend(dp, b, BACKEND_STATE.active, 1);
  setTable(dp, VIP_TCP.id, [1, 2, 1, 2, 1, 2, 1]);
  setTable(dp, VIP_UDP.id, Array(TABLE_LEN).fill(3));
  setTable(dp, VIP_PFX.id, Array(TABLE_LEN).fill(4));
  // VIP_EMPTY has no Maglev table: "no server configured"
}

/** The backend Maglev picks for a new flow, computed with the TS mirror of kp_flow_hash. */
function predict(vip: VipDef, p: PacketSpec): number {
  const proto = p.proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  const key = codecs.flowKey.encode({ saddr: p.src, daddr: p.dst, sport: p.sport!, dport: p.dport!, proto });
  return tables.get(vip.id)![maglevSlot(flowHash(key, SEED), TABLE_LEN)];
}

/** A client source port whose new flow to `vip` lands on backend `want`. */
function portFor(vip: VipDef, want: number, from: number): number {
  for (let sport = from; sport < from + 1000; sport++) {
    if (predict(vip, tcpTo(vip.addr, vip.port, sport)) === want) return sport;
  }
  throw new Error(`no source port maps to backend ${want}`);
}

// ---- packets ------------------------------------------------------------------------------

function tcpTo(dst: string, dport: number, sport: number, extra: Partial<PacketSpec> = {}): PacketSpec {
  return { srcMac: MAC_CLIENT, dstMac: MAC_NODE, src: CLIENT, dst, proto: 'tcp', sport, dport, tcpFlags: TCP_SYN, seq: 1000, ...extra };
}

/** The packet after DNAT to backend b: same fields, new destination (checksums from scratch). */
function dnat(p: PacketSpec, b: BackendDef): PacketSpec {
  return { ...p, dst: b.addr, dport: b.port };
}

function reply(from: BackendDef, toPort: number, extra: Partial<PacketSpec> = {}): PacketSpec {
  return {
    srcMac: MAC_NODE,
    dstMac: MAC_CLIENT,
    src: from.addr,
    dst: CLIENT,
    proto: 'tcp',
    sport: from.port,
    dport: toPort,
    tcpFlags: TCP_SYN | TCP_ACK,
    seq: 5000,
    ack: 1001,
    payload: Buffer.from('reply'),
    ...extra,
  };
}

// ---- fixtures -------------------------------------------------------------------------------

type VipCounters = Partial<Record<keyof codecs.VipStats, number>>;
interface Fixture {
  description: string;
  setup?: (dp: Dataplane) => void | Promise<void>;
  input: Buffer;
  verdict: number;
  /** expected output frame; 'input' = byte-identical */
  output: Buffer | 'input';
  /** global counter deltas; every counter not listed must stay unchanged */
  stats: Partial<Record<StatName, number>>;
  vipStats?: Record<number, VipCounters>;
  beStats?: Record<number, { packets: number; bytes: number }>;
  ingressIfindex?: number;
}

const synA = tcpTo(VIP_TCP.addr, 80, 40001);
const synA2 = { ...synA, tcpFlags: TCP_ACK, seq: 1001, ack: 5001, payload: Buffer.from('GET / HTTP/1.0\r\n\r\n') };
const udp0 = { srcMac: MAC_CLIENT, dstMac: MAC_NODE, src: CLIENT, dst: VIP_UDP.addr, proto: 'udp', sport: 33333, dport: 53, payload: Buffer.from('dns?'), udpNoChecksum: true } satisfies PacketSpec;
const udpSum = { ...udp0, sport: 33334, udpNoChecksum: false };
const vlanSyn = tcpTo(VIP_TCP.addr, 80, 40002, { vlan: 100 });
const optSyn = tcpTo(VIP_TCP.addr, 80, 40003, { ipOptions: Buffer.from([1, 1, 1, 0]) });
const pfxSyn = tcpTo('198.18.64.77', 443, 40004);
const fibSyn = tcpTo(VIP_TCP.addr, 80, 40005);
const len = (p: PacketSpec): number => buildPacket(p).length;

function fixtures(): Fixture[] {
  const beA = be(predict(VIP_TCP, synA));
  const padded = tcpTo(VIP_TCP.addr, 80, 40031);
  const beFib = be(predict(VIP_TCP, fibSyn));
  // Flows pinned to backend 1 and 2, for the flush and drain fixtures.
  const flushSport = portFor(VIP_TCP, 1, 41000);
  const flushSyn = tcpTo(VIP_TCP.addr, 80, flushSport);
  const drainSport = portFor(VIP_TCP, 2, 42000);
  const drainSyn = tcpTo(VIP_TCP.addr, 80, drainSport);
  const drainNew = tcpTo(VIP_TCP.addr, 80, portFor(VIP_TCP, 2, drainSport + 1));
  const idleSyn = tcpTo(VIP_TCP.addr, 80, portFor(VIP_TCP, 1, 43000));

  const trunc = (p: PacketSpec, keep: number): Buffer => buildPacket(p).subarray(0, keep);
  const mutate = (p: PacketSpec, f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(buildPacket(p));
    f(b);
    return b;
  };

  return [
    {
      description: 'TCP SYN to a VIP is DNATed to the Maglev pick (checksums verified from scratch)',
      input: buildPacket(synA),
      verdict: XDP.PASS,
      output: buildPacket(dnat(synA, beA)),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(synA) } },
      beStats: { [beA.id]: { packets: 1, bytes: len(synA) } },
    },
    {
      description: 'next packet of the flow goes to the same backend (existing session)',
      input: buildPacket(synA2),
      verdict: XDP.PASS,
      output: buildPacket(dnat(synA2, beA)),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { existingPkts: 1, bytes: len(synA2) } },
      beStats: { [beA.id]: { packets: 1, bytes: len(synA2) } },
    },
    {
      description: 'reply from the backend is SNATed back to VIP:port',
      input: buildPacket(reply(beA, synA.sport!)),
      verdict: XDP.PASS,
      output: buildPacket({ ...reply(beA, synA.sport!), src: VIP_TCP.addr, sport: 80 }),
      stats: { SNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { replyPkts: 1, replyBytes: len(reply(beA, synA.sport!)) } },
    },
    {
      description: 'unrelated packet from a backend (no rev-nat entry) passes untouched',
      input: buildPacket(reply(beA, 50000)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NO_MATCH: 1 },
    },
    {
      description: 'packet to a non-VIP address passes untouched',
      input: buildPacket(tcpTo('198.18.30.1', 80, 40020)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NO_MATCH: 1 },
    },
    {
      description: 'packet to a VIP address on another port passes untouched',
      input: buildPacket(tcpTo(VIP_TCP.addr, 81, 40021)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NO_MATCH: 1 },
    },
    {
      description: 'VIP without backends: rejected with ICMP port unreachable, "no server configured"',
      input: buildPacket(tcpTo(VIP_EMPTY.addr, 80, 40022)),
      verdict: XDP.PASS,
      output: icmpError(buildPacket(tcpTo(VIP_EMPTY.addr, 80, 40022)), 3, 3),
      stats: { REJECT: 1, TX_PASS: 1 },
      vipStats: { [VIP_EMPTY.id]: { noServerPkts: 1, bytes: len(tcpTo(VIP_EMPTY.addr, 80, 40022)) } },
    },
    {
      description: 'VIP without backends, a VLAN-tagged packet with payload: the reject keeps the tag and quotes 8 bytes',
      input: buildPacket(tcpTo(VIP_EMPTY.addr, 80, 40026, { vlan: 7, payload: Buffer.from('hello, nobody') })),
      verdict: XDP.PASS,
      output: icmpError(buildPacket(tcpTo(VIP_EMPTY.addr, 80, 40026, { vlan: 7, payload: Buffer.from('hello, nobody') })), 3, 3),
      stats: { REJECT: 1, TX_PASS: 1 },
    },
    {
      description: 'VIP without backends, IP options: cannot be quoted by kpbpf, dropped',
      input: buildPacket({ ...tcpTo(VIP_EMPTY.addr, 80, 40023), ipOptions: Buffer.from([1, 1, 1, 0]) }),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_NO_BACKEND: 1 },
    },
    {
      description: 'UDP with checksum 0 keeps checksum 0 after DNAT',
      input: buildPacket(udp0),
      verdict: XDP.PASS,
      output: buildPacket({ ...udp0, dst: be(3).addr, dport: be(3).port }),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_UDP.id]: { firstPkts: 1, bytes: len(udp0) } },
      beStats: { 3: { packets: 1, bytes: len(udp0) } },
    },
    {
      description: 'UDP with a checksum gets it updated by DNAT',
      input: buildPacket(udpSum),
      verdict: XDP.PASS,
      output: buildPacket({ ...udpSum, dst: be(3).addr, dport: be(3).port }),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_UDP.id]: { firstPkts: 1, bytes: len(udpSum) } },
      beStats: { 3: { packets: 1, bytes: len(udpSum) } },
    },
    {
      description: 'VLAN-tagged SYN is DNATed and keeps its tag',
      input: buildPacket(vlanSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(vlanSyn, be(predict(VIP_TCP, vlanSyn)))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(vlanSyn) } },
    },
    {
      description: 'IPv4 options are skipped: DNAT still finds the ports',
      input: buildPacket(optSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(optSyn, be(predict(VIP_TCP, optSyn)))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(optSyn) } },
    },
    {
      description: 'non-IP frame (ARP) passes untouched',
      input: ethernet(ETH_P_ARP, Buffer.alloc(28, 0x11)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NOT_IP: 1 },
    },
    {
      description: 'ICMP to a VIP address passes untouched',
      input: buildPacket({ src: CLIENT, dst: VIP_TCP.addr, proto: 1, payload: Buffer.from('0800f7ff00000000', 'hex') }),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NOT_L4: 1 },
    },
    {
      description: 'truncated Ethernet: VLAN TPID without room for the tag is dropped',
      input: ethernet(0x8100, Buffer.alloc(0)),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'truncated IPv4 header is dropped',
      input: trunc(synA, 14 + 12),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'truncated TCP header is dropped',
      input: trunc(synA, 14 + 20 + 12),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'truncated UDP header is dropped',
      input: trunc(udp0, 14 + 20 + 6),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'IHL < 5 is dropped',
      input: mutate(synA, (b) => (b[14] = 0x44)),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'IP options running past the frame are dropped',
      input: mutate(synA, (b) => (b[14] = 0x4f)).subarray(0, 14 + 40),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'IP total length shorter than the headers is dropped',
      input: mutate(synA, (b) => b.writeUInt16BE(20 + 8, 16)),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'a datagram longer than its frame (cut short on the way) is dropped, as a router discards it, not rewritten',
      input: trunc({ ...synA, payload: Buffer.from('hello') }, 14 + 20 + 20 + 2),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'a frame longer than its datagram (Ethernet padding) is served',
      input: Buffer.concat([buildPacket(padded), Buffer.alloc(6)]),
      verdict: XDP.PASS,
      output: Buffer.concat([buildPacket(dnat(padded, be(predict(VIP_TCP, padded)))), Buffer.alloc(6)]),
      stats: { DNAT: 1, TX_PASS: 1 },
    },
    {
      description: 'transit TCP with a data offset below 5 passes untouched (a router forwards it)',
      input: mutate(tcpTo('198.18.30.1', 80, 40024), (b) => (b[14 + 20 + 12] = 0x40)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_MALFORMED: 1 },
    },
    {
      description: 'transit UDP whose header is longer than the IP total length passes untouched',
      input: mutate({ ...udpSum, dst: '198.18.30.1' }, (b) => b.writeUInt16BE(20 + 4, 16)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_MALFORMED: 1 },
    },
    {
      description: 'TCP with a data offset below 5 to a VIP is dropped',
      input: mutate(tcpTo(VIP_TCP.addr, 80, 40025), (b) => (b[14 + 20 + 12] = 0x40)),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'a malformed reply of a NATed connection is dropped, not passed untranslated',
      input: mutate(reply(beA, synA.sport!), (b) => (b[14 + 20 + 12] = 0x30)),
      verdict: XDP.DROP,
      output: 'input',
      stats: { DROP_MALFORMED: 1 },
    },
    {
      description: 'prefix VIP (198.18.64.0/24) matches through the LPM trie',
      input: buildPacket(pfxSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(pfxSyn, be(4))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_PFX.id]: { firstPkts: 1, bytes: len(pfxSyn) } },
      beStats: { 4: { packets: 1, bytes: len(pfxSyn) } },
    },
    {
      description: "reply to a prefix VIP's flow is SNATed to the address the client used",
      input: buildPacket(reply(be(4), pfxSyn.sport!)),
      verdict: XDP.PASS,
      output: buildPacket({ ...reply(be(4), pfxSyn.sport!), src: pfxSyn.dst, sport: 443 }),
      stats: { SNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_PFX.id]: { replyPkts: 1, replyBytes: len(reply(be(4), pfxSyn.sport!)) } },
    },
    {
      description: 'with n_vip_prefixes = 0 the prefix VIP is not looked up',
      setup: (dp) => setConfig(dp, { nVipPrefixes: 0 }),
      input: buildPacket(tcpTo('198.18.64.78', 443, 40030)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NO_MATCH: 1 },
    },
    {
      description: 'flow pinned to backend 1: first packet',
      setup: (dp) => setConfig(dp, {}),
      input: buildPacket(flushSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(flushSyn, be(1))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(flushSyn) } },
      beStats: { 1: { packets: 1, bytes: len(flushSyn) } },
    },
    {
      description: 'after backend 1 is flushed (gen bump, table without it) its flow re-selects backend 2',
      setup: (dp) => {
        setBackend(dp, be(1), BACKEND_STATE.draining, 2);
        setTable(dp, VIP_TCP.id, Array(TABLE_LEN).fill(2));
      },
      input: buildPacket(flushSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(flushSyn, be(2))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(flushSyn) } },
      beStats: { 2: { packets: 1, bytes: len(flushSyn) } },
    },
    {
      description: 'flow pinned to backend 2: first packet',
      setup: (dp) => {
        setBackend(dp, be(1), BACKEND_STATE.active, 3);
        setTable(dp, VIP_TCP.id, [1, 2, 1, 2, 1, 2, 1]);
      },
      input: buildPacket(drainSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(drainSyn, be(2))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(drainSyn) } },
      beStats: { 2: { packets: 1, bytes: len(drainSyn) } },
    },
    {
      description: 'backend 2 draining: its existing flow stays on it',
      setup: (dp) => {
        setBackend(dp, be(2), BACKEND_STATE.draining, 1);
        setTable(dp, VIP_TCP.id, [1, 5, 1, 5, 1, 5, 1]);
      },
      input: buildPacket({ ...drainSyn, tcpFlags: TCP_ACK }),
      verdict: XDP.PASS,
      output: buildPacket(dnat({ ...drainSyn, tcpFlags: TCP_ACK }, be(2))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { existingPkts: 1, bytes: len(drainSyn) } },
      beStats: { 2: { packets: 1, bytes: len(drainSyn) } },
    },
    {
      // drainNew's slot held 2 in the old table and holds 5 in the new one.
      description: 'backend 2 draining: a new flow that used to map to it goes to the new table',
      input: buildPacket(drainNew),
      verdict: XDP.PASS,
      output: buildPacket(dnat(drainNew, be(5))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(drainNew) } },
      beStats: { 2: { packets: 0, bytes: 0 }, 5: { packets: 1, bytes: len(drainNew) } },
    },
    {
      description: 'a slot still naming a draining backend is "no server configured" (rejected)',
      setup: (dp) => setTable(dp, VIP_TCP.id, Array(TABLE_LEN).fill(2)),
      input: buildPacket(tcpTo(VIP_TCP.addr, 80, 44000)),
      verdict: XDP.PASS,
      output: icmpError(buildPacket(tcpTo(VIP_TCP.addr, 80, 44000)), 3, 3),
      stats: { REJECT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { noServerPkts: 1, bytes: len(tcpTo(VIP_TCP.addr, 80, 44000)) } },
    },
    {
      description: 'idle timeout: a connection opens (SYN sent, whose timeout is set to 1 s)',
      setup: (dp) => {
        setBackend(dp, be(2), BACKEND_STATE.active, 1);
        setTable(dp, VIP_TCP.id, [1, 2, 1, 2, 1, 2, 1]);
        setConfig(dp, { timeouts: { tcp_syn_sent: 1 } });
      },
      input: buildPacket(idleSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(idleSyn, be(1))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(idleSyn) } },
    },
    {
      description: 'idle timeout: after 1.2 s idle the connection is gone and a new one picks again (Maglev now says backend 2)',
      setup: async (dp) => {
        await sleep(IDLE_MS);
        setTable(dp, VIP_TCP.id, Array(TABLE_LEN).fill(2));
      },
      input: buildPacket(idleSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(idleSyn, be(2))),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, existingPkts: 0, bytes: len(idleSyn) } },
    },
    {
      description: 'idle timeout: a reply of an expired connection is not SNATed, and its entry is removed',
      setup: () => sleep(IDLE_MS),
      input: buildPacket(reply(be(2), idleSyn.sport!)),
      verdict: XDP.PASS,
      output: 'input',
      stats: { PASS_NO_MATCH: 1, CT_STALE: 1 },
    },
    {
      description: 'without KP_CONF_F_NO_FIB, ingress lo: nothing to redirect to, XDP_PASS after DNAT',
      setup: (dp) => {
        setTable(dp, VIP_TCP.id, [1, 2, 1, 2, 1, 2, 1]);
        setConfig(dp, { flags: 0 });
      },
      ingressIfindex: LO_IFINDEX,
      input: buildPacket(fibSyn),
      verdict: XDP.PASS,
      output: buildPacket(dnat(fibSyn, beFib)),
      stats: { DNAT: 1, TX_PASS: 1 },
      vipStats: { [VIP_TCP.id]: { firstPkts: 1, bytes: len(fibSyn) } },
      beStats: { [beFib.id]: { packets: 1, bytes: len(fibSyn) } },
    },
  ];
}

// ---- runner ----------------------------------------------------------------------------------

interface Snapshot {
  stats: Record<StatName, bigint>;
  vip: Map<number, codecs.VipStats>;
  be: Map<number, codecs.BackendStats>;
}

function snapshot(dp: Dataplane, f: Fixture): Snapshot {
  const stats = {} as Record<StatName, bigint>;
  for (const n of ALL_STATS) stats[n] = dp.maps.stats.sum(KP_STAT[n], addU64) ?? 0n;
  const vip = new Map<number, codecs.VipStats>();
  for (const id of Object.keys(f.vipStats ?? {}).map(Number)) vip.set(id, dp.maps.vipStats.sum(id, addRecords)!);
  const be = new Map<number, codecs.BackendStats>();
  for (const id of Object.keys(f.beStats ?? {}).map(Number)) be.set(id, dp.maps.beStats.sum(id, addRecords)!);
  return { stats, vip, be };
}

const reason = bpfSkipReason();
if (reason) {
  t.skip(`BPF datapath fixtures: ${reason}`, async () => {});
} else {
  // kp_flows is per-CPU: keep every test run on CPU 0 so a flow is found on its next packet.
  if (!pinToCpu(0)) throw new Error('sched_setaffinity(CPU 0) failed');
  const dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  setup(dp);

  for (const f of fixtures()) {
    t.test(f.description, async (t) => {
      await f.setup?.(dp);
      const before = snapshot(dp, f);
      const res = testRun(dp.progFd, f.input, { ingressIfindex: f.ingressIfindex });
      const after = snapshot(dp, f);

      t.equal(res.retval, f.verdict, 'verdict');
      const want = f.output === 'input' ? f.input : f.output;
      t.equal(res.data.toString('hex'), want.toString('hex'), 'output bytes');
      if (f.output !== 'input') t.same(verifyChecksums(res.data), { ip: true, l4: true }, 'checksums recomputed from scratch');

      for (const n of ALL_STATS) {
        t.equal(after.stats[n] - before.stats[n], BigInt(f.stats[n] ?? 0), `kp_stats ${n} delta`);
      }
      for (const [id, want] of Object.entries(f.vipStats ?? {})) {
        const a = after.vip.get(Number(id))!;
        const b = before.vip.get(Number(id))!;
        const keys = Object.keys(a) as Array<keyof codecs.VipStats>;
        for (const k of keys) t.equal(a[k] - b[k], BigInt(want[k] ?? 0), `VIP ${id} ${k} delta`);
      }
      for (const [id, want] of Object.entries(f.beStats ?? {})) {
        const a = after.be.get(Number(id))!;
        const b = before.be.get(Number(id))!;
        t.equal(a.packets - b.packets, BigInt(want.packets), `backend ${id} packets delta`);
        t.equal(a.bytes - b.bytes, BigInt(want.bytes), `backend ${id} bytes delta`);
      }
    });
  }

  t.test('the Maglev pick of the C program matches the TS hash mirror over many flows', async (t) => {
    setConfig(dp, {});
    setTable(dp, VIP_TCP.id, [1, 2, 5, 1, 2, 5, 1]);
    for (let sport = 45000; sport < 45064; sport++) {
      const p = tcpTo(VIP_TCP.addr, 80, sport);
      const res = testRun(dp.progFd, buildPacket(p), {});
      const dst = res.data.subarray(14 + 16, 14 + 20).join('.');
      t.equal(dst, be(predict(VIP_TCP, p)).addr, `sport ${sport}`);
    }
  });
}
