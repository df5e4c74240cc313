// Fixed-size codecs for every struct of bpf/kp_shared.h. LAYOUTS is the single table of sizes
// and offsets the codecs use; test/maps/btf-layout.test.ts checks it against the object's BTF.
import { addrToBytes, bytesToAddr, ADDR_LEN } from './addr.js';

export interface Codec<T> {
  readonly size: number;
  encode(v: T): Buffer;
  decode(b: Buffer, off?: number): T;
}

export interface StructLayout {
  size: number;
  /** C field name → [offset, size in bytes] */
  fields: Record<string, readonly [number, number]>;
}

export const LAYOUTS = {
  kp_flow_key: {
    size: 40,
    fields: { saddr: [0, 16], daddr: [16, 16], sport: [32, 2], dport: [34, 2], proto: [36, 1], pad: [37, 3] },
  },
  kp_flow: { size: 24, fields: { backend_id: [0, 4], backend_gen: [4, 4], last_seen_ns: [8, 8], rev_seen_ns: [16, 8] } },
  kp_rev_nat: {
    size: 32,
    fields: { vip_addr: [0, 16], vip_port: [16, 2], pad: [18, 2], vip_id: [20, 4], last_seen_ns: [24, 8] },
  },
  kp_vip_key: { size: 20, fields: { addr: [0, 16], port: [16, 2], proto: [18, 1], pad: [19, 1] } },
  kp_vip_pfx_key: { size: 24, fields: { prefixlen: [0, 4], proto: [4, 1], pad: [5, 1], port: [6, 2], addr: [8, 16] } },
  kp_vip: { size: 16, fields: { id: [0, 4], table_len: [4, 4], flags: [8, 2], target_port: [10, 2], reserved: [12, 4] } },
  kp_backend: {
    size: 32,
    fields: {
      addr: [0, 16],
      port: [16, 2],
      state: [18, 1],
      pad: [19, 1],
      gen: [20, 4],
      vip_id: [24, 4],
      weight: [28, 2],
      pad2: [30, 2],
    },
  },
  kp_config: {
    size: 24,
    fields: { flow_timeout_ns: [0, 8], hash_seed: [8, 4], n_vip_prefixes: [12, 4], flags: [16, 4], reserved: [20, 4] },
  },
  kp_vip_stats: {
    size: 56,
    fields: {
      existing_pkts: [0, 8],
      first_pkts: [8, 8],
      untracked_pkts: [16, 8],
      no_server_pkts: [24, 8],
      bytes: [32, 8],
      reply_pkts: [40, 8],
      reply_bytes: [48, 8],
    },
  },
  kp_backend_stats: { size: 16, fields: { packets: [0, 8], bytes: [8, 8] } },
  bpf_devmap_val: { size: 8, fields: { ifindex: [0, 4], bpf_prog: [4, 4] } },
} as const satisfies Record<string, StructLayout>;

/** Fields in network byte order (__be16/__be32 in kp_shared.h); the codecs write them big-endian. */
export const NET_ORDER_FIELDS: Record<keyof typeof LAYOUTS, readonly string[]> = {
  kp_flow_key: ['sport', 'dport'],
  kp_flow: [],
  kp_rev_nat: ['vip_port'],
  kp_vip_key: ['port'],
  kp_vip_pfx_key: ['port'],
  kp_vip: ['target_port'],
  kp_backend: ['port'],
  kp_config: [],
  kp_vip_stats: [],
  kp_backend_stats: [],
  bpf_devmap_val: [],
};

type Layout = (typeof LAYOUTS)[keyof typeof LAYOUTS];
const off = <L extends Layout>(l: L, f: keyof L['fields']): number => (l.fields as Record<string, readonly [number, number]>)[f as string][0];

/** proto, pad and port (32 bits) come before the address in kp_vip_pfx_key and are always matched. */
export const PFX_HEADER_BITS = 32;

// TS values. Addresses are text, ports host-order numbers, 64-bit counters and times bigint.
// Ports are written big-endian (network order); other integers little-endian (the x86/arm64 host order).
export interface FlowKey {
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  proto: number;
}
export interface Flow {
  backendId: number;
  backendGen: number;
  lastSeenNs: bigint;
  revSeenNs: bigint;
}
export interface RevNat {
  vipAddr: string;
  vipPort: number;
  vipId: number;
  lastSeenNs: bigint;
}
export interface VipKey {
  addr: string;
  port: number;
  proto: number;
}
export interface VipPfxKey {
  /** address prefix length in the 128-bit space; the key's prefixlen is 32 + len128 */
  len128: number;
  proto: number;
  port: number;
  addr: string;
}
export interface Vip {
  id: number;
  tableLen: number;
  flags: number;
  /** the VIP's target port, kept for listing */
  targetPort: number;
}
export interface Backend {
  addr: string;
  port: number;
  state: number;
  gen: number;
  vipId: number;
  weight: number;
}
export interface Config {
  flowTimeoutNs: bigint;
  hashSeed: number;
  nVipPrefixes: number;
  flags: number;
}
export interface VipStats {
  existingPkts: bigint;
  firstPkts: bigint;
  untrackedPkts: bigint;
  noServerPkts: bigint;
  bytes: bigint;
  replyPkts: bigint;
  replyBytes: bigint;
}
export interface BackendStats {
  packets: bigint;
  bytes: bigint;
}
export interface DevmapVal {
  ifindex: number;
  /** program fd on update, program id on lookup; 0 for none */
  prog: number;
}

function codec<T>(size: number, enc: (v: T, b: Buffer) => void, dec: (b: Buffer, o: number) => T): Codec<T> {
  return {
    size,
    encode(v: T): Buffer {
      const b = Buffer.alloc(size); // zero-filled: padding never carries garbage into a key
      enc(v, b);
      return b;
    },
    decode: (b: Buffer, o = 0) => dec(b, o),
  };
}

const putAddr = (b: Buffer, o: number, s: string) => addrToBytes(s).copy(b, o);
const getAddr = (b: Buffer, o: number) => bytesToAddr(b.subarray(o, o + ADDR_LEN));

const FK = LAYOUTS.kp_flow_key;
export const flowKey = codec<FlowKey>(
  FK.size,
  (v, b) => {
    putAddr(b, off(FK, 'saddr'), v.saddr);
    putAddr(b, off(FK, 'daddr'), v.daddr);
    b.writeUInt16BE(v.sport, off(FK, 'sport'));
    b.writeUInt16BE(v.dport, off(FK, 'dport'));
    b.writeUInt8(v.proto, off(FK, 'proto'));
  },
  (b, o) => ({
    saddr: getAddr(b, o + off(FK, 'saddr')),
    daddr: getAddr(b, o + off(FK, 'daddr')),
    sport: b.readUInt16BE(o + off(FK, 'sport')),
    dport: b.readUInt16BE(o + off(FK, 'dport')),
    proto: b.readUInt8(o + off(FK, 'proto')),
  }),
);

const FL = LAYOUTS.kp_flow;
export const flow = codec<Flow>(
  FL.size,
  (v, b) => {
    b.writeUInt32LE(v.backendId, off(FL, 'backend_id'));
    b.writeUInt32LE(v.backendGen, off(FL, 'backend_gen'));
    b.writeBigUInt64LE(v.lastSeenNs, off(FL, 'last_seen_ns'));
    b.writeBigUInt64LE(v.revSeenNs, off(FL, 'rev_seen_ns'));
  },
  (b, o) => ({
    backendId: b.readUInt32LE(o + off(FL, 'backend_id')),
    backendGen: b.readUInt32LE(o + off(FL, 'backend_gen')),
    lastSeenNs: b.readBigUInt64LE(o + off(FL, 'last_seen_ns')),
    revSeenNs: b.readBigUInt64LE(o + off(FL, 'rev_seen_ns')),
  }),
);

const RN = LAYOUTS.kp_rev_nat;
export const revNat = codec<RevNat>(
  RN.size,
  (v, b) => {
    putAddr(b, off(RN, 'vip_addr'), v.vipAddr);
    b.writeUInt16BE(v.vipPort, off(RN, 'vip_port'));
    b.writeUInt32LE(v.vipId, off(RN, 'vip_id'));
    b.writeBigUInt64LE(v.lastSeenNs, off(RN, 'last_seen_ns'));
  },
  (b, o) => ({
    vipAddr: getAddr(b, o + off(RN, 'vip_addr')),
    vipPort: b.readUInt16BE(o + off(RN, 'vip_port')),
    vipId: b.readUInt32LE(o + off(RN, 'vip_id')),
    lastSeenNs: b.readBigUInt64LE(o + off(RN, 'last_seen_ns')),
  }),
);

const VK = LAYOUTS.kp_vip_key;
export const vipKey = codec<VipKey>(
  VK.size,
  (v, b) => {
    putAddr(b, off(VK, 'addr'), v.addr);
    b.writeUInt16BE(v.port, off(VK, 'port'));
    b.writeUInt8(v.proto, off(VK, 'proto'));
  },
  (b, o) => ({
    addr: getAddr(b, o + off(VK, 'addr')),
    port: b.readUInt16BE(o + off(VK, 'port')),
    proto: b.readUInt8(o + off(VK, 'proto')),
  }),
);

const PK = LAYOUTS.kp_vip_pfx_key;
export const vipPfxKey = codec<VipPfxKey>(
  PK.size,
  (v, b) => {
    b.writeUInt32LE(PFX_HEADER_BITS + v.len128, off(PK, 'prefixlen'));
    b.writeUInt8(v.proto, off(PK, 'proto'));
    b.writeUInt16BE(v.port, off(PK, 'port'));
    putAddr(b, off(PK, 'addr'), v.addr);
  },
  (b, o) => ({
    len128: b.readUInt32LE(o + off(PK, 'prefixlen')) - PFX_HEADER_BITS,
    proto: b.readUInt8(o + off(PK, 'proto')),
    port: b.readUInt16BE(o + off(PK, 'port')),
    addr: getAddr(b, o + off(PK, 'addr')),
  }),
);

const VP = LAYOUTS.kp_vip;
export const vip = codec<Vip>(
  VP.size,
  (v, b) => {
    b.writeUInt32LE(v.id, off(VP, 'id'));
    b.writeUInt32LE(v.tableLen, off(VP, 'table_len'));
    b.writeUInt16LE(v.flags, off(VP, 'flags'));
    b.writeUInt16BE(v.targetPort, off(VP, 'target_port'));
  },
  (b, o) => ({
    id: b.readUInt32LE(o + off(VP, 'id')),
    tableLen: b.readUInt32LE(o + off(VP, 'table_len')),
    flags: b.readUInt16LE(o + off(VP, 'flags')),
    targetPort: b.readUInt16BE(o + off(VP, 'target_port')),
  }),
);

const BE = LAYOUTS.kp_backend;
export const backend = codec<Backend>(
  BE.size,
  (v, b) => {
    putAddr(b, off(BE, 'addr'), v.addr);
    b.writeUInt16BE(v.port, off(BE, 'port'));
    b.writeUInt8(v.state, off(BE, 'state'));
    b.writeUInt32LE(v.gen, off(BE, 'gen'));
    b.writeUInt32LE(v.vipId, off(BE, 'vip_id'));
    b.writeUInt16LE(v.weight, off(BE, 'weight'));
  },
  (b, o) => ({
    addr: getAddr(b, o + off(BE, 'addr')),
    port: b.readUInt16BE(o + off(BE, 'port')),
    state: b.readUInt8(o + off(BE, 'state')),
    gen: b.readUInt32LE(o + off(BE, 'gen')),
    vipId: b.readUInt32LE(o + off(BE, 'vip_id')),
    weight: b.readUInt16LE(o + off(BE, 'weight')),
  }),
);

const CF = LAYOUTS.kp_config;
export const config = codec<Config>(
  CF.size,
  (v, b) => {
    b.writeBigUInt64LE(v.flowTimeoutNs, off(CF, 'flow_timeout_ns'));
    b.writeUInt32LE(v.hashSeed, off(CF, 'hash_seed'));
    b.writeUInt32LE(v.nVipPrefixes, off(CF, 'n_vip_prefixes'));
    b.writeUInt32LE(v.flags, off(CF, 'flags'));
  },
  (b, o) => ({
    flowTimeoutNs: b.readBigUInt64LE(o + off(CF, 'flow_timeout_ns')),
    hashSeed: b.readUInt32LE(o + off(CF, 'hash_seed')),
    nVipPrefixes: b.readUInt32LE(o + off(CF, 'n_vip_prefixes')),
    flags: b.readUInt32LE(o + off(CF, 'flags')),
  }),
);

/** A struct made only of __u64 counters: C field names in order → TS names. */
function counters<T extends Record<string, bigint>>(layout: StructLayout, names: Record<string, keyof T>): Codec<T> {
  const fields = Object.entries(names).map(([c, ts]) => [layout.fields[c][0], ts] as const);
  return codec<T>(
    layout.size,
    (v, b) => fields.forEach(([o, ts]) => b.writeBigUInt64LE(v[ts], o)),
    (b, o) => Object.fromEntries(fields.map(([fo, ts]) => [ts, b.readBigUInt64LE(o + fo)])) as T,
  );
}

export const vipStats = counters<VipStats & Record<string, bigint>>(LAYOUTS.kp_vip_stats, {
  existing_pkts: 'existingPkts',
  first_pkts: 'firstPkts',
  untracked_pkts: 'untrackedPkts',
  no_server_pkts: 'noServerPkts',
  bytes: 'bytes',
  reply_pkts: 'replyPkts',
  reply_bytes: 'replyBytes',
}) as Codec<VipStats>;

export const backendStats = counters<BackendStats & Record<string, bigint>>(LAYOUTS.kp_backend_stats, {
  packets: 'packets',
  bytes: 'bytes',
}) as Codec<BackendStats>;

const DV = LAYOUTS.bpf_devmap_val;
export const devmapVal = codec<DevmapVal>(
  DV.size,
  (v, b) => {
    b.writeUInt32LE(v.ifindex, off(DV, 'ifindex'));
    b.writeUInt32LE(v.prog, off(DV, 'bpf_prog'));
  },
  (b, o) => ({ ifindex: b.readUInt32LE(o + off(DV, 'ifindex')), prog: b.readUInt32LE(o + off(DV, 'bpf_prog')) }),
);

export const u32 = codec<number>(4, (v, b) => b.writeUInt32LE(v, 0), (b, o) => b.readUInt32LE(o));
export const u64 = codec<bigint>(8, (v, b) => b.writeBigUInt64LE(v, 0), (b, o) => b.readBigUInt64LE(o));
