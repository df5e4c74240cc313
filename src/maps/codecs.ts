// Fixed-size codecs for every struct of bpf/kp_shared.h. LAYOUTS is the single table of sizes
// and offsets the codecs use; test/maps/btf-layout.test.ts checks it against the object's BTF.
import { bytesToAddr, writeAddr, ADDR_LEN } from './addr.js';

export interface Codec<T> {
  readonly size: number;
  encode(v: T): Buffer;
  /** encode into `b` (zeroed, `size` bytes from `off`): a batch of 80k entries makes no buffer each */
  encodeInto?(v: T, b: Buffer, off: number): void;
  decode(b: Buffer, off?: number): T;
}

export interface StructLayout {
  size: number;
  /** C field name → [offset, size in bytes] */
  fields: Record<string, readonly [number, number]>;
}

/** KP_LAYOUT_VERSION of bpf/kp_shared.h: what the pinned maps mean (checked against the header in a test). */
export const LAYOUT_VERSION = 6;

export const LAYOUTS = {
  kp_flow_key: {
    size: 40,
    fields: { saddr: [0, 16], daddr: [16, 16], sport: [32, 2], dport: [34, 2], proto: [36, 1], dir: [37, 1], pad: [38, 2] },
  },
  kp_ct: {
    size: 64,
    fields: {
      last_seen_ns: [0, 8],
      backend_id: [8, 4],
      backend_gen: [12, 4],
      vip_id: [16, 4],
      client_port: [20, 2],
      state: [22, 1],
      flags: [23, 1],
      vip_port: [24, 2],
      hop_mtu: [26, 2],
      hop_checked: [28, 4],
      vip_addr: [32, 16],
      peer: [48, 16],
    },
  },
  kp_ct_hop: { size: 16, fields: { ifindex: [0, 4], dmac: [4, 6], smac: [10, 6] } },
  kp_masq: { size: 24, fields: { addr: [0, 16], port_min: [16, 2], port_max: [18, 2], pad: [20, 4] } },
  kp_affinity_key: { size: 24, fields: { vip_id: [0, 4], pad: [4, 4], addr: [8, 16] } },
  kp_affinity: { size: 16, fields: { backend_id: [0, 4], backend_gen: [4, 4], last_ns: [8, 8] } },
  kp_sock_key: { size: 32, fields: { cookie: [0, 8], addr: [8, 16], port: [24, 2], proto: [26, 1], dir: [27, 1], pad: [28, 4] } },
  kp_sock_nat: { size: 40, fields: { addr: [0, 16], port: [16, 2], pad: [18, 2], backend_id: [20, 4], backend_gen: [24, 4], vip_id: [28, 4], last_seen_ns: [32, 8] } },
  kp_frag_key: { size: 40, fields: { saddr: [0, 16], daddr: [16, 16], id: [32, 4], proto: [36, 1], pad: [37, 3] } },
  kp_frag: { size: 16, fields: { sport: [0, 2], dport: [2, 2], pad: [4, 4], seen_ns: [8, 8] } },
  kp_hop: { size: 20, fields: { ifindex: [0, 4], dmac: [4, 6], smac: [10, 6], mtu: [16, 2], redirect: [18, 1], pad: [19, 1] } },
  kp_nexthop: { size: 32, fields: { hop: [0, 20], pad: [20, 4], checked_ns: [24, 8] } },
  kp_vip_key: { size: 20, fields: { addr: [0, 16], port: [16, 2], proto: [18, 1], pad: [19, 1] } },
  kp_vip_pfx_key: { size: 24, fields: { prefixlen: [0, 4], proto: [4, 1], pad: [5, 1], port: [6, 2], addr: [8, 16] } },
  kp_src_key: { size: 24, fields: { prefixlen: [0, 4], vip_id: [4, 4], addr: [8, 16] } },
  kp_vip: { size: 16, fields: { id: [0, 4], table_len: [4, 4], flags: [8, 2], target_port: [10, 2], node_port: [12, 2], pad: [14, 2] } },
  kp_backend: {
    size: 32,
    fields: {
      addr: [0, 16],
      port: [16, 2],
      state: [18, 1],
      flags: [19, 1],
      gen: [20, 4],
      vip_id: [24, 4],
      weight: [28, 2],
      pad2: [30, 2],
    },
  },
  kp_config: {
    size: 64,
    fields: { hash_seed: [0, 4], n_vip_prefixes: [4, 4], flags: [8, 4], hop_gen: [12, 4], timeout_s: [16, 48] },
  },
  kp_settings: {
    size: 8 + 20 * 16,
    fields: { nodeport_min: [0, 2], nodeport_max: [2, 2], n_nodeport_prefixes: [4, 4], nodeport_prefixes: [8, 320] },
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
  kp_ct: ['vip_port', 'client_port'],
  kp_ct_hop: [],
  kp_masq: [],
  kp_affinity_key: [],
  kp_affinity: [],
  kp_sock_key: ['port'],
  kp_sock_nat: ['port'],
  kp_frag_key: ['id'],
  kp_frag: ['sport', 'dport'],
  kp_hop: [],
  kp_nexthop: [],
  kp_vip_key: ['port'],
  kp_vip_pfx_key: ['port'],
  kp_src_key: [],
  kp_vip: ['target_port', 'node_port'],
  kp_backend: ['port'],
  kp_config: [],
  kp_settings: [],
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
  /** KP_DIR_ORIG (0, default) for a forward entry, KP_DIR_REPLY (1) for a reply entry */
  dir?: number;
}
export const KP_DIR = { orig: 0, reply: 1 } as const;

/** enum kp_ct_state, by index (bpf/kp_shared.h). */
export const CT_STATES = [
  'none',
  'syn_sent',
  'syn_recv',
  'established',
  'fin_wait',
  'close_wait',
  'last_ack',
  'time_wait',
  'close',
  'udp',
  'udp_stream',
] as const;
export type CtStateName = (typeof CT_STATES)[number];
/** Entries of kp_config.timeout_s (KP_CT_STATES). */
export const CT_TIMEOUT_SLOTS = 12;
/** kp_ct.flags */
/** kp_backend.state (KP_BACKEND_* in kp_shared.h). */
export const BACKEND_STATE = { free: 0, active: 1, draining: 2 } as const;

export const CT_FLAG = { reply: 0x1, finOrig: 0x2, finReply: 0x4, loose: 0x8, remap: 0x10, hopRedirect: 0x20, masq: 0x40 } as const;

export interface Ct {
  /** reply entries: the VIP address the client used; masqueraded forward records: the source the backend sees */
  vipAddr: string;
  /** masqueraded reply entries: the client's own address (it takes the place of the cached next hop) */
  clientAddr?: string;
  lastSeenNs: bigint;
  backendId: number;
  backendGen: number;
  vipId: number;
  vipPort: number;
  /** forward: the source port the backend sees; reply: the client's own port */
  clientPort: number;
  state: number;
  flags: number;
}
export interface FragKey {
  saddr: string;
  daddr: string;
  /** the IPv4 identification */
  id: number;
  proto: number;
}
export interface Frag {
  sport: number;
  dport: number;
  seenNs: bigint;
}
export interface NextHop {
  ifindex: number;
  dmac: string;
  smac: string;
  mtu: number;
  redirect: boolean;
  checkedNs: bigint;
}
/** kp_addrs values */
export const ADDR_FLAG = { vip: 0x1, backend: 0x2 } as const;

export interface VipKey {
  addr: string;
  port: number;
  proto: number;
}
/** A VIP's allowed source prefix (kp_src_ranges); len128 counts bits of the 16-byte address. */
export interface SrcKey {
  vipId: number;
  addr: string;
  len128: number;
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
  /** 0, or its node port (then also reached on (node address, node port)) */
  nodePort?: number;
}
/** kp_backend.flags (KP_BACKEND_F_*). */
export const BACKEND_FLAG = { local: 0x1, terminating: 0x2 } as const;
export interface Backend {
  addr: string;
  port: number;
  state: number;
  gen: number;
  vipId: number;
  weight: number;
  /** on this node: eligible under a local traffic policy */
  local?: boolean;
  /** serving but terminating (KEP-1669): new connections only while no ready backend exists */
  terminating?: boolean;
}
export interface Config {
  /** idle timeout in seconds per enum kp_ct_state (CT_TIMEOUT_SLOTS entries; 0 = never) */
  timeoutS: number[];
  hashSeed: number;
  nVipPrefixes: number;
  flags: number;
  /** bumped when redirect targets change: the data path drops its per-backend next hops */
  hopGen?: number;
}
/** kp_settings: control-plane settings kept with the pins. Prefixes are canonical "addr/len" text. */
export interface Settings {
  /** 0 = default */
  nodePortMin: number;
  nodePortMax: number;
  nodePortAddresses: string[];
}
export const KP_NODEPORT_PREFIXES = 16;
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
    encodeInto(v: T, b: Buffer, off: number): void {
      enc(v, off === 0 && b.length === size ? b : b.subarray(off, off + size));
    },
    decode: (b: Buffer, o = 0) => dec(b, o),
  };
}

const putAddr = (b: Buffer, o: number, s: string) => writeAddr(s, b, o);
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
    b.writeUInt8(v.dir ?? 0, off(FK, 'dir'));
  },
  (b, o) => ({
    saddr: getAddr(b, o + off(FK, 'saddr')),
    daddr: getAddr(b, o + off(FK, 'daddr')),
    sport: b.readUInt16BE(o + off(FK, 'sport')),
    dport: b.readUInt16BE(o + off(FK, 'dport')),
    proto: b.readUInt8(o + off(FK, 'proto')),
    dir: b.readUInt8(o + off(FK, 'dir')),
  }),
);

const CT = LAYOUTS.kp_ct;
export const ct = codec<Ct>(
  CT.size,
  (v, b) => {
    putAddr(b, off(CT, 'vip_addr'), v.vipAddr);
    if (v.clientAddr !== undefined) putAddr(b, off(CT, 'peer'), v.clientAddr);
    b.writeBigUInt64LE(v.lastSeenNs, off(CT, 'last_seen_ns'));
    b.writeUInt32LE(v.backendId, off(CT, 'backend_id'));
    b.writeUInt32LE(v.backendGen, off(CT, 'backend_gen'));
    b.writeUInt32LE(v.vipId, off(CT, 'vip_id'));
    b.writeUInt16BE(v.vipPort, off(CT, 'vip_port'));
    b.writeUInt16BE(v.clientPort, off(CT, 'client_port'));
    b.writeUInt8(v.state, off(CT, 'state'));
    b.writeUInt8(v.flags, off(CT, 'flags'));
  },
  (b, o) => ({
    vipAddr: getAddr(b, o + off(CT, 'vip_addr')),
    lastSeenNs: b.readBigUInt64LE(o + off(CT, 'last_seen_ns')),
    backendId: b.readUInt32LE(o + off(CT, 'backend_id')),
    backendGen: b.readUInt32LE(o + off(CT, 'backend_gen')),
    vipId: b.readUInt32LE(o + off(CT, 'vip_id')),
    vipPort: b.readUInt16BE(o + off(CT, 'vip_port')),
    clientPort: b.readUInt16BE(o + off(CT, 'client_port')),
    state: b.readUInt8(o + off(CT, 'state')),
    flags: b.readUInt8(o + off(CT, 'flags')),
    ...((b.readUInt8(o + off(CT, 'flags')) & (CT_FLAG.masq | CT_FLAG.reply)) === (CT_FLAG.masq | CT_FLAG.reply)
      ? { clientAddr: getAddr(b, o + off(CT, 'peer')) }
      : {}),
  }),
);

/** kp_sock: a node socket's translation (dir orig: the VIP it dialled -> backend; reply: backend -> VIP). */
export interface SockKey {
  cookie: bigint;
  addr: string;
  port: number;
  proto: number;
  dir: number;
}
export interface SockNat {
  addr: string;
  port: number;
  backendId: number;
  backendGen: number;
  vipId: number;
  lastSeenNs: bigint;
}
const SKK = LAYOUTS.kp_sock_key;
export const sockKey = codec<SockKey>(
  SKK.size,
  (v, b) => {
    b.writeBigUInt64LE(v.cookie, off(SKK, 'cookie'));
    putAddr(b, off(SKK, 'addr'), v.addr);
    b.writeUInt16BE(v.port, off(SKK, 'port'));
    b.writeUInt8(v.proto, off(SKK, 'proto'));
    b.writeUInt8(v.dir, off(SKK, 'dir'));
  },
  (b, o) => ({
    cookie: b.readBigUInt64LE(o + off(SKK, 'cookie')),
    addr: getAddr(b, o + off(SKK, 'addr')),
    port: b.readUInt16BE(o + off(SKK, 'port')),
    proto: b.readUInt8(o + off(SKK, 'proto')),
    dir: b.readUInt8(o + off(SKK, 'dir')),
  }),
);
const SKN = LAYOUTS.kp_sock_nat;
export const sockNat = codec<SockNat>(
  SKN.size,
  (v, b) => {
    putAddr(b, off(SKN, 'addr'), v.addr);
    b.writeUInt16BE(v.port, off(SKN, 'port'));
    b.writeUInt32LE(v.backendId, off(SKN, 'backend_id'));
    b.writeUInt32LE(v.backendGen, off(SKN, 'backend_gen'));
    b.writeUInt32LE(v.vipId, off(SKN, 'vip_id'));
    b.writeBigUInt64LE(v.lastSeenNs, off(SKN, 'last_seen_ns'));
  },
  (b, o) => ({
    addr: getAddr(b, o + off(SKN, 'addr')),
    port: b.readUInt16BE(o + off(SKN, 'port')),
    backendId: b.readUInt32LE(o + off(SKN, 'backend_id')),
    backendGen: b.readUInt32LE(o + off(SKN, 'backend_gen')),
    vipId: b.readUInt32LE(o + off(SKN, 'vip_id')),
    lastSeenNs: b.readBigUInt64LE(o + off(SKN, 'last_seen_ns')),
  }),
);

/** kp_affinity: a client of a VIP with session affinity, and its backend. */
export interface AffinityKey {
  vipId: number;
  addr: string;
}
export interface Affinity {
  backendId: number;
  backendGen: number;
  lastNs: bigint;
}
const AK = LAYOUTS.kp_affinity_key;
export const affinityKey = codec<AffinityKey>(
  AK.size,
  (v, b) => {
    b.writeUInt32LE(v.vipId, off(AK, 'vip_id'));
    putAddr(b, off(AK, 'addr'), v.addr);
  },
  (b, o) => ({ vipId: b.readUInt32LE(o + off(AK, 'vip_id')), addr: getAddr(b, o + off(AK, 'addr')) }),
);
const AV = LAYOUTS.kp_affinity;
export const affinity = codec<Affinity>(
  AV.size,
  (v, b) => {
    b.writeUInt32LE(v.backendId, off(AV, 'backend_id'));
    b.writeUInt32LE(v.backendGen, off(AV, 'backend_gen'));
    b.writeBigUInt64LE(v.lastNs, off(AV, 'last_ns'));
  },
  (b, o) => ({ backendId: b.readUInt32LE(o + off(AV, 'backend_id')), backendGen: b.readUInt32LE(o + off(AV, 'backend_gen')), lastNs: b.readBigUInt64LE(o + off(AV, 'last_ns')) }),
);

/** kp_masq's keys: one address per family; the port range is the IPv4 entry's (KP_MASQ_V4/V6). */
export const MASQ_V4 = 0;
export const MASQ_V6 = 1;
/** kp_masq key of the NAT46 prefix (addr: the /96 prefix, all zero = 64:ff9b::/96). */
export const MASQ_NAT46 = 2;
const MQ = LAYOUTS.kp_masq;
/** kp_masq: where masqueraded connections come from. Address '' (all zero) = none; ports 0 = defaults. */
export interface Masq {
  addr: string;
  portMin: number;
  portMax: number;
}
export const masq = codec<Masq>(
  MQ.size,
  (v, b) => {
    if (v.addr) putAddr(b, off(MQ, 'addr'), v.addr);
    b.writeUInt16LE(v.portMin, off(MQ, 'port_min'));
    b.writeUInt16LE(v.portMax, off(MQ, 'port_max'));
  },
  (b, o) => {
    const raw = b.subarray(o + off(MQ, 'addr'), o + off(MQ, 'addr') + ADDR_LEN);
    return {
      addr: raw.every((x) => x === 0) ? '' : getAddr(b, o + off(MQ, 'addr')),
      portMin: b.readUInt16LE(o + off(MQ, 'port_min')),
      portMax: b.readUInt16LE(o + off(MQ, 'port_max')),
    };
  },
);

const FGK = LAYOUTS.kp_frag_key;
export const fragKey = codec<FragKey>(
  FGK.size,
  (v, b) => {
    putAddr(b, off(FGK, 'saddr'), v.saddr);
    putAddr(b, off(FGK, 'daddr'), v.daddr);
    b.writeUInt16BE(v.id, off(FGK, 'id')); // a 16-bit IPv4 id in the first half of the __be32
    b.writeUInt8(v.proto, off(FGK, 'proto'));
  },
  (b, o) => ({
    saddr: getAddr(b, o + off(FGK, 'saddr')),
    daddr: getAddr(b, o + off(FGK, 'daddr')),
    id: b.readUInt16BE(o + off(FGK, 'id')),
    proto: b.readUInt8(o + off(FGK, 'proto')),
  }),
);

const FG = LAYOUTS.kp_frag;
export const frag = codec<Frag>(
  FG.size,
  (v, b) => {
    b.writeUInt16BE(v.sport, off(FG, 'sport'));
    b.writeUInt16BE(v.dport, off(FG, 'dport'));
    b.writeBigUInt64LE(v.seenNs, off(FG, 'seen_ns'));
  },
  (b, o) => ({ sport: b.readUInt16BE(o + off(FG, 'sport')), dport: b.readUInt16BE(o + off(FG, 'dport')), seenNs: b.readBigUInt64LE(o + off(FG, 'seen_ns')) }),
);

const NH = LAYOUTS.kp_hop; // kp_nexthop.hop is at offset 0
const NHT = LAYOUTS.kp_nexthop;
const macText = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const putMac = (b: Buffer, o: number, m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16))).copy(b, o);
export const nextHop = codec<NextHop>(
  NHT.size,
  (v, b) => {
    b.writeUInt32LE(v.ifindex, off(NH, 'ifindex'));
    putMac(b, off(NH, 'dmac'), v.dmac);
    putMac(b, off(NH, 'smac'), v.smac);
    b.writeUInt16LE(v.mtu, off(NH, 'mtu'));
    b.writeUInt8(v.redirect ? 1 : 0, off(NH, 'redirect'));
    b.writeBigUInt64LE(v.checkedNs, off(NHT, 'checked_ns'));
  },
  (b, o) => ({
    ifindex: b.readUInt32LE(o + off(NH, 'ifindex')),
    dmac: macText(b.subarray(o + off(NH, 'dmac'), o + off(NH, 'dmac') + 6)),
    smac: macText(b.subarray(o + off(NH, 'smac'), o + off(NH, 'smac') + 6)),
    mtu: b.readUInt16LE(o + off(NH, 'mtu')),
    redirect: b.readUInt8(o + off(NH, 'redirect')) !== 0,
    checkedNs: b.readBigUInt64LE(o + off(NHT, 'checked_ns')),
  }),
);

/** A bare 16-byte address (key of kp_addrs). */
export const addr16 = codec<string>(
  ADDR_LEN,
  (v, b) => putAddr(b, 0, v),
  (b, o) => getAddr(b, o),
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

const ST = LAYOUTS.kp_settings;
const NP_ENTRY = 20;
export const settings = codec<Settings>(
  ST.size,
  (v, b) => {
    if (v.nodePortAddresses.length > KP_NODEPORT_PREFIXES) throw new RangeError(`kp_settings: at most ${KP_NODEPORT_PREFIXES} node port address prefixes`);
    b.writeUInt16LE(v.nodePortMin, off(ST, 'nodeport_min'));
    b.writeUInt16LE(v.nodePortMax, off(ST, 'nodeport_max'));
    b.writeUInt32LE(v.nodePortAddresses.length, off(ST, 'n_nodeport_prefixes'));
    v.nodePortAddresses.forEach((text, i) => {
      const [addr, len] = text.split('/');
      const o = off(ST, 'nodeport_prefixes') + i * NP_ENTRY;
      putAddr(b, o, addr);
      b.writeUInt32LE(Number(len) + (addr.includes('.') ? 96 : 0), o + 16);
    });
  },
  (b, o) => {
    const n = Math.min(b.readUInt32LE(o + off(ST, 'n_nodeport_prefixes')), KP_NODEPORT_PREFIXES);
    return {
      nodePortMin: b.readUInt16LE(o + off(ST, 'nodeport_min')),
      nodePortMax: b.readUInt16LE(o + off(ST, 'nodeport_max')),
      nodePortAddresses: Array.from({ length: n }, (_, i) => {
        const e = o + off(ST, 'nodeport_prefixes') + i * NP_ENTRY;
        const addr = getAddr(b, e);
        const len128 = b.readUInt32LE(e + 16);
        return `${addr}/${addr.includes('.') ? len128 - 96 : len128}`;
      }),
    };
  },
);

const SK = LAYOUTS.kp_src_key;
/** vip_id (32 bits) comes before the address in kp_src_key and is always matched. */
export const SRC_HEADER_BITS = 32;
export const srcKey = codec<SrcKey>(
  SK.size,
  (v, b) => {
    b.writeUInt32LE(SRC_HEADER_BITS + v.len128, off(SK, 'prefixlen'));
    b.writeUInt32LE(v.vipId, off(SK, 'vip_id'));
    putAddr(b, off(SK, 'addr'), v.addr);
  },
  (b, o) => ({
    vipId: b.readUInt32LE(o + off(SK, 'vip_id')),
    addr: getAddr(b, o + off(SK, 'addr')),
    len128: b.readUInt32LE(o + off(SK, 'prefixlen')) - SRC_HEADER_BITS,
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
    b.writeUInt16BE(v.nodePort ?? 0, off(VP, 'node_port'));
  },
  (b, o) => ({
    id: b.readUInt32LE(o + off(VP, 'id')),
    tableLen: b.readUInt32LE(o + off(VP, 'table_len')),
    flags: b.readUInt16LE(o + off(VP, 'flags')),
    targetPort: b.readUInt16BE(o + off(VP, 'target_port')),
    nodePort: b.readUInt16BE(o + off(VP, 'node_port')),
  }),
);

const BE = LAYOUTS.kp_backend;
export const backend = codec<Backend>(
  BE.size,
  (v, b) => {
    putAddr(b, off(BE, 'addr'), v.addr);
    b.writeUInt16BE(v.port, off(BE, 'port'));
    b.writeUInt8(v.state, off(BE, 'state'));
    b.writeUInt8((v.local ? BACKEND_FLAG.local : 0) | (v.terminating ? BACKEND_FLAG.terminating : 0), off(BE, 'flags'));
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
    ...(b.readUInt8(o + off(BE, 'flags')) & BACKEND_FLAG.local ? { local: true } : {}),
    ...(b.readUInt8(o + off(BE, 'flags')) & BACKEND_FLAG.terminating ? { terminating: true } : {}),
  }),
);

const CF = LAYOUTS.kp_config;
export const config = codec<Config>(
  CF.size,
  (v, b) => {
    if (v.timeoutS.length > CT_TIMEOUT_SLOTS) throw new RangeError(`kp_config: at most ${CT_TIMEOUT_SLOTS} timeouts`);
    v.timeoutS.forEach((t, i) => b.writeUInt32LE(t, off(CF, 'timeout_s') + 4 * i));
    b.writeUInt32LE(v.hashSeed, off(CF, 'hash_seed'));
    b.writeUInt32LE(v.nVipPrefixes, off(CF, 'n_vip_prefixes'));
    b.writeUInt32LE(v.flags, off(CF, 'flags'));
    b.writeUInt32LE((v.hopGen ?? 0) >>> 0, off(CF, 'hop_gen'));
  },
  (b, o) => ({
    timeoutS: Array.from({ length: CT_TIMEOUT_SLOTS }, (_, i) => b.readUInt32LE(o + off(CF, 'timeout_s') + 4 * i)),
    hashSeed: b.readUInt32LE(o + off(CF, 'hash_seed')),
    nVipPrefixes: b.readUInt32LE(o + off(CF, 'n_vip_prefixes')),
    flags: b.readUInt32LE(o + off(CF, 'flags')),
    hopGen: b.readUInt32LE(o + off(CF, 'hop_gen')),
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
