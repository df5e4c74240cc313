// VIPs and their backends in the live maps: id allocation, graceful removal, Maglev publishing.
// The maps are read once per process into a snapshot that every write keeps up to date, so a
// config of 10k VIPs is applied without re-reading 262k backend slots per operation.
import { KpError } from '../errors.js';
import type { Dataplane } from '../loader/index.js';
import { parsePrefix, V4_MAPPED_BITS, addrToBytes, bytesToAddr, ipv4Value } from '../maps/addr.js';
import { BACKEND_STATE, LAYOUTS, backend as backendCodec, type Backend, type Vip, type VipKey, type VipPfxKey } from '../maps/codecs.js';
import { buildMaglevTables } from '../maglev/parallel.js';
import { maglevTableTag } from '../maglev/expected.js';
import { autoTableFits, autoTableLen } from '../maglev/primes.js';
import type { BackendView, Protocol, VipSpec, VipType, VipView } from './types.js';
import type { CtTimeouts } from '../config/timeouts.js';
import { backendsInUse } from './connections.js';
import { AddrRefs, type AddrKind } from './addrrefs.js';
import { WriteBatch } from './writebatch.js';
import { buildTable, maglevBackends, tableBackends, type Slot } from './tables.js';
import { AFFINITY_TIMEOUT_MAX, KP_NODEPORT_MAX, KP_NODEPORT_MIN } from '../config/types.js';
import { memo } from '../config/address.js';

// Mirrors of bpf/kp_shared.h constants.
export const KP_MAX_VIPS = 65536;
/** kp_vip_pfx and kp_src_ranges sizes (bpf/kp_shared.h). */
export const KP_MAX_VIP_PREFIXES = 4096;
export const KP_MAX_SRC_RANGES = 65536;
export const KP_VIP_F_PREFIX = 0x1;
export const KP_VIP_F_NODEPORT = 0x2;
export const KP_VIP_F_SRC_RANGES = 0x4;
export const KP_VIP_F_LB = 0x8;
export const KP_VIP_F_EXTERNAL = 0x10;
export const KP_VIP_F_LOCAL = 0x20;
export const KP_VIP_F_ETP_LOCAL = 0x40;
export const KP_VIP_F_ITP_LOCAL = 0x80;
export const KP_VIP_F_MASQ = 0x100;
export const KP_VIP_F_AFFINITY = 0x200;
export const KP_VIP_F_AUTO_LEN = 0x400;
export const KP_VIP_F_XLATE = 0x800;


const POLICY_LOCAL = KP_VIP_F_ETP_LOCAL | KP_VIP_F_ITP_LOCAL;

/** The flags of a VIP's own entry and of its node port entries for its type and traffic policies. */
function policyFlags(type: VipType, spec: VipSpec): { own: number; node: number } {
  const etp = spec.externalTrafficPolicy === 'local';
  const itp = spec.internalTrafficPolicy === 'local';
  const external = type === 'loadbalancer' || type === 'externalip';
  if (etp && type === 'clusterip') throw new KpError('KP_ERR_ARG', 'external_traffic_policy local: a clusterip VIP has no external traffic (type nodeport, loadbalancer or externalip)');
  if (itp && external) throw new KpError('KP_ERR_ARG', `internal_traffic_policy local: applies to cluster IPs, and this VIP is a ${type}`);
  const marks = (etp ? KP_VIP_F_ETP_LOCAL : 0) | (itp ? KP_VIP_F_ITP_LOCAL : 0);
  // External traffic under policy cluster is masqueraded when it goes to another node's backend.
  const masq = etp ? 0 : KP_VIP_F_MASQ;
  return { own: marks | ((external ? etp : itp) ? KP_VIP_F_LOCAL : 0) | (external ? masq : 0), node: (etp ? KP_VIP_F_LOCAL : 0) | masq };
}

/** The type a VIP's flags and node port say. */
function vipType(v: Vip): VipType {
  if (v.flags & KP_VIP_F_LB) return 'loadbalancer';
  if (v.flags & KP_VIP_F_EXTERNAL) return 'externalip';
  return v.nodePort ? 'nodeport' : 'clusterip';
}

/** The type of a spec, and the check that its node port and source ranges fit it. */
function specType(spec: VipSpec): VipType {
  const type = spec.type ?? (spec.nodePort ? 'nodeport' : 'clusterip');
  if (type === 'nodeport' && !spec.nodePort) throw new KpError('KP_ERR_ARG', 'type nodeport: needs a node port (nodeport N)');
  if (spec.nodePort && type !== 'nodeport' && type !== 'loadbalancer') {
    throw new KpError('KP_ERR_ARG', `nodeport: ${type} VIPs have no node port (type nodeport or loadbalancer)`);
  }
  if (spec.sourceRanges?.length && type !== 'loadbalancer') {
    throw new KpError('KP_ERR_ARG', `source_ranges: only a loadbalancer VIP has source ranges (this one is ${type})`);
  }
  return type;
}

const TYPE_FLAGS: Record<VipType, number> = { clusterip: 0, nodeport: 0, loadbalancer: KP_VIP_F_LB, externalip: KP_VIP_F_EXTERNAL };
export { BACKEND_STATE } from '../maps/codecs.js';
export const PROTO_NUM: Record<Protocol, number> = { tcp: 6, udp: 17 };
const PROTO_NAME: Record<number, Protocol> = { 6: 'tcp', 17: 'udp' };

/** Slots are replaced, never changed in place: every free slot of generation 0 shares this one. */
const FREE_SLOT: Backend = Object.freeze({ addr: '::', port: 0, state: 0, gen: 0, vipId: 0, weight: 0 });

type VipLocation = { kind: 'exact'; key: VipKey } | { kind: 'prefix'; key: VipPfxKey };

/** A VIP's or address's family, from its text. */
const familyOf = (text: string): 4 | 6 => (text.includes(':') ? 6 : 4);

/** The flag of a VIP whose backends are of the other family, checked against the VIP's family. */
function encapFlag(spec: VipSpec, family: 4 | 6): number {
  if (!spec.encap) return 0;
  const want = spec.encap === 'nat46' ? 4 : 6;
  if (family !== want) throw new KpError('KP_ERR_ARG', `encap ${spec.encap}: an IPv${want} VIP's NAT, and this VIP is IPv${family}`);
  return KP_VIP_F_XLATE;
}

/** The family of a VIP's backends (the VIP's own, unless it translates across families). */
const backendFamily = (rec: VipRecord): 4 | 6 => (familyOf(rec.prefix) === 4) === !(rec.value.flags & KP_VIP_F_XLATE) ? 4 : 6;

/** The node port index's key: a dual-stack service's two VIPs (one per family) share their node
 * port number, as Kubernetes gives one nodePort to both. */
const nodePortKey = (family: 4 | 6, protocol: Protocol, port: number): string => `${protocol}/${port}/${family}`;

interface VipRecord {
  id: number;
  prefix: string;
  protocol: Protocol;
  port: number;
  value: Vip;
  location: VipLocation;
  /** its (node address, node port) entries in kp_vips, flagged KP_VIP_F_NODEPORT */
  nodeKeys: VipKey[];
  /** its allowed source prefixes in kp_src_ranges (canonical text) */
  sourceRanges: string[];
  /** "protocol/node port" it holds in the node port index */
  nodePortKey?: string;
  backendIds: Set<number>;
  /** session affinity timeout in seconds (kp_vip_affinity), when flagged KP_VIP_F_AFFINITY */
  affinity?: number;
}

/** A spec's session affinity timeout: 0 for none, else 1 to AFFINITY_TIMEOUT_MAX. */
function affinityOf(spec: VipSpec): number {
  const t = spec.sessionAffinityTimeout ?? 0;
  if (!Number.isInteger(t) || t < 0 || t > AFFINITY_TIMEOUT_MAX) throw new KpError('KP_ERR_ARG', `affinity_timeout: expected 1 to ${AFFINITY_TIMEOUT_MAX} seconds, got ${t}`);
  return t;
}

export interface RemovedBackend extends BackendView {
  flushed: boolean;
}

function prefixText(addr: string, len128: number): string {
  return `${addr}/${addr.includes('.') ? len128 - V4_MAPPED_BITS : len128}`;
}

/** Canonical text of an address, so '2001:DB8::0:1' and '2001:db8::1' are the same backend. */
const canonicalAddrMemo = memo((a) => bytesToAddr(addrToBytes(a)));
/** An address in the data plane's text form (a dotted quad without leading zeros is one already). */
export const canonicalAddr = (a: string): string => (ipv4Value(a) !== undefined ? a : canonicalAddrMemo(a));

/** Canonical text of a prefix (throws on a bad one, as parsePrefix does). */
const canonicalPrefixText: (p: string) => string = memo((p) => parsePrefix(p).text);

/** What the write operations need of a VIP: its id (a VipView is one). */
export interface VipHandle {
  id: number;
}

const vipKeyId = (k: VipKey) => `${k.addr}|${k.port}|${k.proto}`;

const vipIdentity = (prefix: string, protocol: string, port: number) => `${prefix}|${protocol}|${port}`;

export class VipTable {
  private vips?: Map<number, VipRecord>;
  private byIdentity = new Map<string, number>();
  /** every backend slot, including free ones (their gen matters when a slot is re-used) */
  private slots: (Backend | undefined)[] = [];
  /** ids of the slots whose state is draining (collectDrained looks at these, not at 262k slots) */
  private drainingIds = new Set<number>();
  private freeIds: number[] = [];
  /** VIPs whose table must be republished, and removed backends waiting for that */
  private dirty = new Set<number>();
  /** How many exact VIPs and used backend slots have each address (kp_addrs holds the flags). */
  private addrRefs = new AddrRefs(() => this.maps.addrs);
  private pendingRemovals = new Map<number, boolean>();
  /** "protocol/node port" -> the VIP id that has it */
  private nodePortOwner = new Map<string, number>();
  /**
   * Writes of a deferred batch (apply), made by publishPending() before the tables that use them:
   * tens of thousands of backends then cost a few batch syscalls instead of one each.
   */
  private writes?: WriteBatch;
  /** no VIP id below this one is free (ids are handed out lowest first) */
  private vipIdFloor = 1;
  /** slots in use by no VIP, found by load() */
  private orphans: number[] = [];

  /** nodeAddresses: the node's addresses where node ports are served, both families (asked at each change). */
  constructor(
    private readonly dp: Dataplane,
    private readonly nodeAddresses: () => string[] = () => [],
    private readonly nodePortRange: () => [number, number] = () => [KP_NODEPORT_MIN, KP_NODEPORT_MAX],
  ) {}

  /** Every VIP's node port entries made those of the node addresses now (they changed). */
  resyncNodePorts(): void {
    for (const rec of this.load().values()) if (rec.value.nodePort) this.syncNodeKeys(rec);
  }

  private get maps() {
    return this.dp.maps;
  }

  private load(): Map<number, VipRecord> {
    if (this.vips) return this.vips;
    const vips = new Map<number, VipRecord>();
    const add = (v: Vip, prefix: string, proto: number, port: number, location: VipLocation) => {
      const rec: VipRecord = { id: v.id, prefix, protocol: PROTO_NAME[proto] ?? (String(proto) as Protocol), port, value: v, location, nodeKeys: [], sourceRanges: [], backendIds: new Set() };
      if (v.flags & KP_VIP_F_AFFINITY) rec.affinity = this.maps.vipAffinity.lookup(v.id) ?? 0;
      vips.set(v.id, rec);
      this.byIdentity.set(vipIdentity(prefix, rec.protocol, port), v.id);
    };
    const nodeEntries: [VipKey, Vip][] = [];
    for (const [k, v] of this.maps.vips.entries()) {
      if (v.flags & KP_VIP_F_NODEPORT) nodeEntries.push([k, v]);
      else add(v, prefixText(k.addr, 128), k.proto, k.port, { kind: 'exact', key: k });
    }
    for (const [k, v] of this.maps.vipPfx.entries()) add(v, prefixText(k.addr, k.len128), k.proto, k.port, { kind: 'prefix', key: k });
    for (const k of this.maps.srcRanges.keys()) {
      const rec = vips.get(k.vipId);
      if (rec) rec.sourceRanges.push(prefixText(k.addr, k.len128));
      else this.maps.srcRanges.delete(k);
    }
    for (const rec of vips.values()) {
      rec.sourceRanges.sort();
      this.ownNodePort(rec, rec.value.nodePort ? nodePortKey(familyOf(rec.prefix), rec.protocol, rec.value.nodePort) : undefined);
    }
    for (const [k, v] of nodeEntries) {
      const rec = vips.get(v.id);
      if (rec) rec.nodeKeys.push(k);
      else this.maps.vips.delete(k); // a node port entry whose VIP is gone (an interrupted delete)
    }
    this.slots = new Array(this.maps.backends.info.maxEntries);
    this.drainingIds.clear();
    const use = (id: number, b: Backend) => {
      this.setSlot(id, b);
      if (id === 0) return;
      const owner = b.state === BACKEND_STATE.free ? undefined : vips.get(b.vipId);
      if (owner) owner.backendIds.add(id);
      else this.freeIds.push(id);
      // A used slot of no VIP: a writer killed between a new VIP's slots (written at once) and its
      // entry (written with the batch). No table points at it: free to take, and a writer frees it.
      if (!owner && b.state !== BACKEND_STATE.free) this.orphans.push(id);
    };
    // Most of the 262k slots are free: decode only the used ones (addresses are costly to decode).
    const [stateOff] = LAYOUTS.kp_backend.fields.state;
    const [genOff] = LAYOUTS.kp_backend.fields.gen;
    const mapped = this.dp.backendSlots.mapped;
    if (mapped) this.dp.backendSlots.scan((id, b, gen) => use(id, b ?? (gen ? { ...FREE_SLOT, gen } : FREE_SLOT)), BACKEND_STATE.free);
    const scanned = mapped || this.maps.backends.scanBatch((keys, ko, vals, vo) => {
      const id = keys.readUInt32LE(ko);
      if (vals[vo + stateOff] === BACKEND_STATE.free) {
        const gen = vals.readUInt32LE(vo + genOff);
        use(id, gen ? { ...FREE_SLOT, gen } : FREE_SLOT);
      }
      else use(id, backendCodec.decode(vals, vo));
    });
    if (!scanned) for (const [id, b] of this.maps.backends.entries()) use(id, b);
    this.freeIds.sort((a, b) => b - a); // pop() hands out the lowest id first
    this.vips = vips;
    this.loadAddrs();
    return vips;
  }

  /** Address refcounts from the snapshot; kp_addrs is made to match (it may predate them). */
  private loadAddrs(): void {
    for (const rec of this.vips!.values()) if (rec.location.kind === 'exact') this.addrRefs.count(rec.location.key.addr, 'vip', 1);
    this.slots.forEach((b, id) => {
      if (id !== 0 && b && b.state !== BACKEND_STATE.free) this.addrRefs.count(b.addr, 'be', 1);
    });
    this.addrRefs.reconcile();
  }

  private refAddr(addr: string, kind: AddrKind, delta: number): void {
    this.addrRefs.ref(addr, kind, delta, this.writes?.addrs);
  }

  private backendView(id: number, withSlots?: Map<number, number>): BackendView {
    const b = this.slots[id]!;
    return {
      id,
      address: b.addr,
      port: b.port,
      weight: b.weight,
      state: b.state === BACKEND_STATE.active ? 'active' : 'draining',
      gen: b.gen,
      ...(b.local ? { local: true } : {}),
      ...(b.terminating ? { terminating: true } : {}),
      ...(withSlots ? { slots: withSlots.get(id) ?? 0 } : {}),
    };
  }

  private view(rec: VipRecord, withSlots = false): VipView {
    let count: Map<number, number> | undefined;
    if (withSlots) {
      count = new Map();
      for (const id of this.dp.getMaglevTable(rec.id) ?? []) count.set(id, (count.get(id) ?? 0) + 1);
    }
    return {
      id: rec.id,
      prefix: rec.prefix,
      protocol: rec.protocol,
      port: rec.port,
      targetPort: rec.value.targetPort,
      newLen: rec.value.tableLen,
      ...(rec.value.flags & KP_VIP_F_AUTO_LEN ? { newLenAuto: true as const } : {}),
      type: vipType(rec.value),
      ...(rec.value.nodePort ? { nodePort: rec.value.nodePort, nodeAddresses: rec.nodeKeys.map((k) => k.addr).sort() } : {}),
      ...(rec.sourceRanges.length ? { sourceRanges: [...rec.sourceRanges] } : {}),
      ...(rec.value.flags & KP_VIP_F_ETP_LOCAL ? { externalTrafficPolicy: 'local' as const } : {}),
      ...(rec.value.flags & KP_VIP_F_ITP_LOCAL ? { internalTrafficPolicy: 'local' as const } : {}),
      ...(rec.value.flags & KP_VIP_F_AFFINITY && rec.affinity ? { sessionAffinityTimeout: rec.affinity } : {}),
      ...(rec.value.flags & KP_VIP_F_XLATE ? { encap: familyOf(rec.prefix) === 4 ? ('nat46' as const) : ('nat64' as const) } : {}),
      backends: [...rec.backendIds].sort((a, b) => a - b).map((id) => this.backendView(id, count)),
    };
  }

  list(o: { slots?: boolean } = {}): VipView[] {
    return [...this.load().values()].sort((a, b) => a.id - b.id).map((r) => this.view(r, o.slots));
  }

  private record(v: { id: number }): VipRecord {
    const rec = this.load().get(v.id);
    if (!rec) throw new KpError('KP_ERR_STATE', `no vip with id ${v.id}`);
    return rec;
  }

  lookup(prefix: string, protocol: Protocol, port: number): VipView | undefined {
    const h = this.handle(prefix, protocol, port);
    return h && this.view(this.record(h));
  }

  /** A VIP's id without building its view (apply looks one up for every backend it changes). */
  handle(prefix: string, protocol: Protocol, port: number): VipHandle | undefined {
    this.load();
    const id = this.byIdentity.get(vipIdentity(canonicalPrefixText(prefix), protocol, port));
    return id === undefined ? undefined : { id };
  }

  find(q: { prefix: string; protocol?: Protocol; port?: number }): VipView {
    const prefix = parsePrefix(q.prefix).text;
    const all = [...this.load().values()].filter((v) => v.prefix === prefix);
    const hits = all.filter((v) => (q.protocol === undefined || v.protocol === q.protocol) && (q.port === undefined || v.port === q.port));
    if (hits.length === 1) return this.view(hits[0]);
    const want = `${prefix}${q.protocol ? ` ${q.protocol}` : ''}${q.port !== undefined ? ` port ${q.port}` : ''}`;
    const have = (l: VipRecord[]) => l.map((v) => `${v.protocol} port ${v.port}`).join(', ');
    if (!hits.length) throw new KpError('KP_ERR_STATE', `no vip ${want}${all.length ? ` (that prefix has: ${have(all)})` : ''}`);
    throw new KpError('KP_ERR_ARG', `vip ${want} is ambiguous: give protocol and port (${have(hits)})`);
  }

  /** What the VIPs hold now of the maps with a fixed size. */
  usage(): { prefixes: number; exactEntries: number; srcRanges: number } {
    let prefixes = 0;
    let exactEntries = 0;
    let srcRanges = 0;
    for (const rec of this.load().values()) {
      if (rec.location.kind === 'prefix') prefixes++;
      else exactEntries++;
      exactEntries += rec.nodeKeys.length;
      srcRanges += rec.sourceRanges.length;
    }
    return { prefixes, exactEntries, srcRanges };
  }

  /** How many VIP ids and backend slots are free: `apply` checks capacity before changing anything. */
  capacity(): { vipIds: number; backendSlots: number } {
    return { vipIds: KP_MAX_VIPS - 1 - this.load().size, backendSlots: this.freeIds.length };
  }

  private nextVipId(): number {
    const used = this.load();
    for (let id = this.vipIdFloor; id < KP_MAX_VIPS; id++) {
      if (used.has(id)) continue;
      this.vipIdFloor = id; // taken once the VIP is added; a failed add leaves it free
      return id;
    }
    throw new KpError('KP_ERR_STATE', `no free VIP id: all ${KP_MAX_VIPS - 1} are in use`);
  }

  /** Add a VIP, or update the target port / new_len of an existing one (same prefix, protocol, port). */
  add(spec: VipSpec, o: { defer?: boolean } = {}): VipView {
    return this.view(this.record({ id: this.put(spec, o) }));
  }

  /** add without the view (apply adds 10k VIPs and reads none back); the VIP's id. */
  put(spec: VipSpec, o: { defer?: boolean } = {}): number {
    const p = parsePrefix(spec.prefix);
    const existing = this.handle(p.text, spec.protocol, spec.port);
    if (existing) {
      this.update(existing, spec);
      return existing.id;
    }
    if (o.defer) this.writes ??= new WriteBatch(); // a full sync adds 10k VIPs: their entries in one batch
    const id = this.nextVipId();
    const prefix = p.len128 < 128;
    const type = specType(spec);
    const ranges = this.canonicalRanges(spec.sourceRanges ?? [], p.family);
    this.nodeKeysFor(id, p.family, spec.protocol, spec.nodePort ?? 0); // refused before anything is written
    const affinity = affinityOf(spec);
    const auto = spec.newLen === undefined ? KP_VIP_F_AUTO_LEN : 0;
    const xlate = encapFlag(spec, p.family);
    const flags = (prefix ? KP_VIP_F_PREFIX : 0) | TYPE_FLAGS[type] | (ranges.length ? KP_VIP_F_SRC_RANGES : 0) | policyFlags(type, spec).own | (affinity ? KP_VIP_F_AFFINITY : 0) | auto | xlate;
    // An automatic size is settled when its first backends are published.
    const value: Vip = { id, tableLen: spec.newLen ?? autoTableLen(1), flags, targetPort: spec.targetPort, nodePort: spec.nodePort ?? 0 };
    if (affinity) this.maps.vipAffinity.update(id, affinity); // before the VIP is visible with the flag
    // Counters and table of a re-used id start clean before the VIP becomes visible.
    if (this.writes) this.writes.vipZeroStats.push(id);
    else this.maps.vipStats.zero([id]);
    if (this.dp.hasMaglevTable(id)) this.dp.clearMaglevTable(id);
    if (this.dp.hasMaglevTable(id, true)) this.dp.clearMaglevTable(id, true);
    const proto = PROTO_NUM[spec.protocol];
    const addr = bytesToAddr(p.addr);
    const location: VipLocation = prefix
      ? { kind: 'prefix', key: { addr, len128: p.len128, port: spec.port, proto } }
      : { kind: 'exact', key: { addr, port: spec.port, proto } };
    const rec: VipRecord = { id, prefix: p.text, protocol: spec.protocol, port: spec.port, value, location, nodeKeys: [], sourceRanges: [], backendIds: new Set() };
    if (affinity) rec.affinity = affinity;
    this.setRanges(rec, ranges); // before the VIP is visible with KP_VIP_F_SRC_RANGES
    if (location.kind === 'prefix') {
      this.maps.vipPfx.update(location.key, value);
      this.adjustPrefixCount(+1);
    } else {
      this.putVip(location.key, value, true);
      this.refAddr(addr, 'vip', 1);
    }
    this.load().set(id, rec);
    this.byIdentity.set(vipIdentity(rec.prefix, rec.protocol, rec.port), id);
    this.syncNodeKeys(rec);
    return id;
  }

  /** Canonical, sorted, de-duplicated source prefixes of a VIP's family. */
  private canonicalRanges(ranges: string[], family: 4 | 6): string[] {
    const out = ranges.map((r) => {
      const p = parsePrefix(r);
      if (p.family !== family) throw new KpError('KP_ERR_ARG', `source range ${r}: an IPv${family} VIP needs IPv${family} ranges`);
      return p.text;
    });
    return [...new Set(out)].sort();
  }

  /** Makes kp_src_ranges hold exactly `ranges` for the VIP (new ones first, so no allowed source is refused meanwhile). */
  private setRanges(rec: VipRecord, ranges: string[]): void {
    const key = (r: string) => {
      const p = parsePrefix(r);
      return { vipId: rec.id, addr: bytesToAddr(p.addr), len128: p.len128 };
    };
    for (const r of ranges) if (!rec.sourceRanges.includes(r)) this.maps.srcRanges.update(key(r), 1);
    for (const r of rec.sourceRanges) if (!ranges.includes(r)) this.maps.srcRanges.delete(key(r));
    rec.sourceRanges = ranges;
  }

  /** The VIP now holds node port `key` (nodePortKey) or none. */
  private ownNodePort(rec: VipRecord, key: string | undefined): void {
    if (rec.nodePortKey === key) return;
    if (rec.nodePortKey && this.nodePortOwner.get(rec.nodePortKey) === rec.id) this.nodePortOwner.delete(rec.nodePortKey);
    if (key) this.nodePortOwner.set(key, rec.id);
    rec.nodePortKey = key;
  }

  /** The node port entries VIP `id` should have; throws if another VIP holds one of them. */
  private nodeKeysFor(id: number, family: 4 | 6, protocol: Protocol, port: number): VipKey[] {
    if (!port) return [];
    const [min, max] = this.nodePortRange();
    if (port < min || port > max) throw new KpError('KP_ERR_ARG', `node port ${port}: outside the node port range ${min}-${max}`);
    const owner = this.nodePortOwner.get(nodePortKey(family, protocol, port));
    const r = owner !== undefined && owner !== id ? this.load().get(owner) : undefined;
    if (r) throw new KpError('KP_ERR_STATE', `node port ${port}/${protocol} is already vip ${r.prefix} ${r.protocol} port ${r.port}'s`);
    const own = this.nodeAddresses().filter((a) => familyOf(a) === family);
    const keys = [...new Set(own.map(canonicalAddr))].map((addr) => ({ addr, port, proto: PROTO_NUM[protocol] }));
    for (const k of keys) {
      const held = this.maps.vips.lookup(k);
      if (held && (held.id !== id || !(held.flags & KP_VIP_F_NODEPORT))) {
        throw new KpError('KP_ERR_STATE', `node port ${port}/${protocol} on ${k.addr}: that address and port are already vip id ${held.id}'s`);
      }
    }
    return keys;
  }

  /**
   * Makes the VIP's node port entries those of its node port on the node's addresses now: one
   * kp_vips entry per address, with the VIP's value (same id, table and backends) flagged
   * KP_VIP_F_NODEPORT. Node addresses are not flagged in kp_addrs: traffic to the node itself is
   * not kpbpf's, so its unmatched fragments pass.
   */
  private syncNodeKeys(rec: VipRecord): void {
    const want = this.nodeKeysFor(rec.id, familyOf(rec.prefix), rec.protocol, rec.value.nodePort ?? 0);
    this.ownNodePort(rec, rec.value.nodePort ? nodePortKey(familyOf(rec.prefix), rec.protocol, rec.value.nodePort) : undefined);
    const same = (a: VipKey, b: VipKey) => a.addr === b.addr && a.port === b.port && a.proto === b.proto;
    const etp = rec.value.flags & KP_VIP_F_ETP_LOCAL ? KP_VIP_F_LOCAL : KP_VIP_F_MASQ;
    const nodeValue: Vip = { ...rec.value, flags: (rec.value.flags & ~(KP_VIP_F_LOCAL | KP_VIP_F_MASQ)) | KP_VIP_F_NODEPORT | etp };
    for (const k of want) this.maps.vips.update(k, nodeValue);
    for (const k of rec.nodeKeys) if (!want.some((x) => same(x, k))) this.maps.vips.delete(k);
    rec.nodeKeys = want;
  }

  private update(v: VipHandle, spec: VipSpec): void {
    const rec = this.record(v);
    const oldLen = rec.value.tableLen;
    if (rec.value.targetPort !== spec.targetPort) {
      for (const id of rec.backendIds) this.writeBackend(id, { ...this.slots[id]!, port: spec.targetPort });
    }
    const type = specType(spec);
    const ranges = this.canonicalRanges(spec.sourceRanges ?? [], rec.prefix.includes(':') ? 6 : 4);
    this.nodeKeysFor(rec.id, familyOf(rec.prefix), rec.protocol, spec.nodePort ?? 0); // refused before anything is written
    const keep = rec.value.flags & KP_VIP_F_PREFIX;
    const affinity = affinityOf(spec);
    const auto = spec.newLen === undefined ? KP_VIP_F_AUTO_LEN : 0;
    const xlate = encapFlag(spec, familyOf(rec.prefix));
    if (xlate !== (rec.value.flags & KP_VIP_F_XLATE)) {
      // The backends change family: the old ones leave the table (their connections go on) before
      // the entries say the new family, so no new connection picks one of the wrong family.
      const active = [...rec.backendIds].filter((id) => this.slots[id]!.state === BACKEND_STATE.active);
      if (active.length) this.delBackends(v, active.map((id) => this.slots[id]!.addr), { flush: false });
    }
    const flags = keep | TYPE_FLAGS[type] | (ranges.length ? KP_VIP_F_SRC_RANGES : 0) | policyFlags(type, spec).own | (affinity ? KP_VIP_F_AFFINITY : 0) | auto | xlate;
    // Automatic: the size stays while it suits the backends, else the one they ask for.
    const n = this.tableBackends(rec).length;
    const newLen = spec.newLen ?? (autoTableFits(rec.value.tableLen, n) ? rec.value.tableLen : autoTableLen(n));
    // The timeout is in place before the flag that makes the data path read it.
    if (affinity && affinity !== rec.affinity) this.maps.vipAffinity.update(rec.id, affinity);
    rec.affinity = affinity || undefined;
    const policyChanged = (flags ^ rec.value.flags) & POLICY_LOCAL;
    if (policyChanged && flags & POLICY_LOCAL) this.syncLocalTable(rec, true); // before an entry picks from it
    const value: Vip = { ...rec.value, flags, tableLen: newLen, targetPort: spec.targetPort, nodePort: spec.nodePort ?? 0 };
    // Ranges that are added are in place before the flag that makes the data path look them up;
    // ranges that go are removed after it (below).
    this.setRanges(rec, [...new Set([...rec.sourceRanges, ...ranges])].sort());
    // The data path takes a table's length from its ref, so the size and the table change in any order.
    this.writeVip(rec, value);
    if (newLen !== oldLen) this.publishTable(rec, newLen);
    if (policyChanged && !(flags & POLICY_LOCAL)) this.syncLocalTable(rec, false); // after no entry picks from it
    this.setRanges(rec, ranges);
  }

  /**
   * An exact VIP's entry. Only a VIP added in the open batch waits for the batch (nothing sees it
   * yet); a live VIP's entry is written at once, as the steps around it are ordered against it
   * (source ranges, the local-only table), and a deleted one goes first of all.
   */
  private putVip(key: VipKey, value: Vip | undefined, fresh = false): void {
    const id = vipKeyId(key);
    const queued = this.writes?.vips.get(id);
    if (value && queued) queued[1] = value;
    else if (value && fresh && this.writes) this.writes.vips.set(id, [key, value]);
    else if (value) this.maps.vips.update(key, value);
    else {
      this.writes?.vips.delete(id);
      this.maps.vips.delete(key);
    }
  }

  private writeVip(rec: VipRecord, value: Vip): void {
    if (rec.location.kind === 'exact') this.putVip(rec.location.key, value);
    else this.maps.vipPfx.update(rec.location.key, value);
    rec.value = value;
    this.syncNodeKeys(rec); // the node port entries carry the same value; addresses may have changed
  }

  private adjustPrefixCount(delta: number): void {
    const c = this.maps.config.lookup(0);
    if (!c) return;
    this.maps.config.update(0, { ...c, nVipPrefixes: Math.max(0, c.nVipPrefixes + delta) });
  }

  del(v: VipHandle): void {
    const rec = this.record(v);
    // Unreachable first, then its table and backends: no packet sees a half-deleted VIP.
    for (const k of rec.nodeKeys) this.maps.vips.delete(k);
    rec.nodeKeys = [];
    this.ownNodePort(rec, undefined);
    if (rec.location.kind === 'exact') {
      this.putVip(rec.location.key, undefined);
      this.refAddr(rec.location.key.addr, 'vip', -1);
    } else {
      this.maps.vipPfx.delete(rec.location.key);
      this.adjustPrefixCount(-1);
    }
    if (this.dp.hasMaglevTable(rec.id)) this.dp.clearMaglevTable(rec.id);
    if (this.dp.hasMaglevTable(rec.id, true)) this.dp.clearMaglevTable(rec.id, true);
    this.setRanges(rec, []);
    for (const id of rec.backendIds) {
      this.pendingRemovals.delete(id);
      this.freeBackend(id);
    }
    this.dirty.delete(rec.id);
    this.load().delete(rec.id);
    this.vipIdFloor = Math.min(this.vipIdFloor, rec.id);
    this.byIdentity.delete(vipIdentity(rec.prefix, rec.protocol, rec.port));
  }

  private writeBackend(id: number, b: Backend): void {
    const old = this.slots[id];
    // Through the mapping when there is one (no packet uses a slot until a table points at it, or a
    // connection whose generation it checks); else batched in a deferred apply.
    if (this.dp.backendSlots.mapped) this.dp.backendSlots.write(id, b);
    else if (this.writes) this.writes.backends.set(id, b);
    else this.maps.backends.update(id, b);
    this.setSlot(id, b);
    const was = old && old.state !== BACKEND_STATE.free ? old.addr : undefined;
    const is = b.state !== BACKEND_STATE.free ? b.addr : undefined;
    if (was === is) return; // a state or weight change keeps the address
    if (is !== undefined) this.refAddr(is, 'be', 1);
    if (was !== undefined) this.refAddr(was, 'be', -1);
  }

  private setSlot(id: number, b: Backend): void {
    this.slots[id] = b;
    if (b.state === BACKEND_STATE.draining) this.drainingIds.add(id);
    else this.drainingIds.delete(id);
  }

  /** Whether any backend is draining (collectDrained has something to look at). */
  hasDraining(): boolean {
    this.load();
    return this.drainingIds.size > 0;
  }

  /** Free a slot: the gen bump makes every flow pinned to it re-select on its next packet (O(1) flush). */
  private freeBackend(id: number): void {
    const b = this.slots[id];
    if (!b) return;
    this.writeBackend(id, { ...b, state: BACKEND_STATE.free, gen: (b.gen + 1) >>> 0 });
    const owner = this.vips?.get(b.vipId);
    owner?.backendIds.delete(id);
    this.freeIds.push(id);
  }

  /** Canonical addresses; with `family`, each checked to be of the VIP's backends' family. */
  private canonicalFor(rec: VipRecord, addrs: string[], family = true): string[] {
    const want = backendFamily(rec);
    const vipFamily = familyOf(rec.prefix);
    return [
      ...new Set(
        addrs.map((a) => {
          const c = canonicalAddr(a);
          if (family && familyOf(c) !== want) {
            const how = want === vipFamily ? `(for IPv${familyOf(c)} backends: encap nat${vipFamily}${familyOf(c)})` : `(encap nat${vipFamily}${want})`;
            throw new KpError('KP_ERR_ARG', `backend ${a}: this IPv${vipFamily} VIP needs IPv${want} backends ${how}`);
          }
          return c;
        }),
      ),
    ];
  }

  private backendByAddr(rec: VipRecord, addr: string): number | undefined {
    for (const id of rec.backendIds) if (this.slots[id]!.addr === addr) return id;
    return undefined;
  }

  /**
   * Add (or re-activate, or re-weight) backends. Their slots are written at once (a backend is in no
   * table yet, so no packet can pick it early); the VIP's table is published by publishPending(),
   * right away unless `defer` is set, so that `apply` publishes every changed table in one batch.
   */
  addBackends(v: VipHandle, addrs: string[], weight: number, o: { defer?: boolean; local?: boolean; terminating?: boolean } = {}): BackendView[] {
    return this.putBackends(v, addrs, weight, o).map((id) => this.backendView(id));
  }

  /** addBackends without the views (apply adds 80k backends and reads none of them back); their ids. */
  putBackends(v: VipHandle, addrs: string[], weight: number, o: { defer?: boolean; local?: boolean; terminating?: boolean } = {}): number[] {
    const rec = this.record(v);
    const canon = this.canonicalFor(rec, addrs);
    if (o.defer) this.writes ??= new WriteBatch();
    const byAddr = new Map<string, number>();
    for (const id of rec.backendIds) byAddr.set(this.slots[id]!.addr, id);
    let fresh = 0;
    for (const a of canon) if (!byAddr.has(a)) fresh++;
    if (fresh > this.freeIds.length) {
      throw new KpError('KP_ERR_STATE', `no free backend slots: ${fresh} needed, ${this.freeIds.length} free`);
    }
    const ids: number[] = [];
    for (const a of canon) {
      const known = byAddr.get(a);
      if (known !== undefined) {
        // Re-activating a draining backend keeps its gen: its existing flows simply continue.
        this.pendingRemovals.delete(known);
        const { local: _was, terminating: _wasT, ...b } = this.slots[known]!;
        this.writeBackend(known, { ...b, state: BACKEND_STATE.active, weight, ...(o.local ? { local: true } : {}), ...(o.terminating ? { terminating: true } : {}) });
        ids.push(known);
        continue;
      }
      const id = this.freeIds.pop()!;
      if (this.writes) this.writes.zeroStats.push(id);
      else this.maps.beStats.zero([id]);
      const b: Backend = { addr: a, port: rec.value.targetPort, state: BACKEND_STATE.active, gen: ((this.slots[id]?.gen ?? 0) + 1) >>> 0, vipId: rec.id, weight };
      if (o.local) b.local = true;
      if (o.terminating) b.terminating = true;
      this.writeBackend(id, b);
      rec.backendIds.add(id);
      byAddr.set(a, id);
      ids.push(id);
    }
    this.dirty.add(rec.id);
    if (!o.defer) this.publishPending();
    return ids;
  }

  /**
   * Remove backends: out of the table first, and only once the new table is published are they marked
   * draining (existing flows stay) or freed (`flush`). Marking them earlier would make packets that
   * still pick them from the old table find no server.
   */
  delBackends(v: VipHandle, addrs: string[], o: { flush: boolean; defer?: boolean }): RemovedBackend[] {
    const rec = this.record(v);
    const ids = this.canonicalFor(rec, addrs, false).map((a) => {
      const id = this.backendByAddr(rec, a);
      if (id === undefined) throw new KpError('KP_ERR_STATE', `backend ${a} is not a backend of vip ${rec.prefix} ${rec.protocol} port ${rec.port}`);
      return id;
    });
    const views = ids.map((id) => this.backendView(id));
    for (const id of ids) {
      this.setSlot(id, { ...this.slots[id]!, state: BACKEND_STATE.draining }); // the next table leaves it out
      this.pendingRemovals.set(id, o.flush);
    }
    this.dirty.add(rec.id);
    if (!o.defer) this.publishPending();
    return views.map((b) => ({ ...b, state: 'draining', flushed: o.flush }));
  }

  /** Compile and atomically publish a VIP's Maglev table from its active backends. */
  publish(v: VipHandle): void {
    this.dirty.add(this.record(v).id);
    this.publishPending();
  }

  /** The VIP's table of local active backends published (`want`) or removed. */
  private syncLocalTable(rec: VipRecord, want: boolean): void {
    const table = want ? this.buildTable(rec, rec.value.tableLen, true) : undefined;
    if (table) this.dp.setMaglevTables([[rec.id, table]], true);
    else if (this.dp.hasMaglevTable(rec.id, true)) this.dp.clearMaglevTable(rec.id, true);
  }

  /** The backends a VIP's table is made of (all, or its local ones): src/dataplane/tables.ts. */
  private tableBackends(rec: VipRecord, localOnly = false): Slot[] {
    return tableBackends(rec.backendIds, this.slots, localOnly);
  }

  private buildTable(rec: VipRecord, size: number, localOnly = false): Uint32Array | undefined {
    return buildTable(this.tableBackends(rec, localOnly), size);
  }

  private publishTable(rec: VipRecord, size: number): void {
    const table = this.buildTable(rec, size);
    if (table) this.dp.setMaglevTables([[rec.id, table]]);
    else this.dp.clearMaglevTable(rec.id);
  }

  /** Slots in use by no VIP (a writer died between them and their VIP's entry) marked free in the
   * maps; how many. Slots are taken as free already: this leaves nothing to show in the maps. */
  freeOrphans(): number {
    this.load();
    const ids = this.orphans.filter((id) => this.slots[id] && this.slots[id]!.state !== BACKEND_STATE.free && !this.vips!.has(this.slots[id]!.vipId));
    this.orphans = [];
    for (const id of ids) this.writeBackend(id, { ...this.slots[id]!, state: BACKEND_STATE.free, gen: (this.slots[id]!.gen + 1) >>> 0 });
    return ids.length;
  }

  /** Every VIP's table built and published again from its backends (after a crash left some stale). */
  republishAll(): number {
    const vips = this.load();
    for (const id of vips.keys()) this.dirty.add(id);
    this.publishPending();
    return vips.size;
  }

  /**
   * Publish every changed VIP's tables in one batch, then settle the removed backends.
   */
  publishPending(): void {
    const vips = this.load();
    // Automatic sizes that no longer suit the backends: a new VIP's entry is still in the batch and
    // takes its size there (10k single writes at a full sync otherwise). The data path takes a
    // table's length from its ref: the entry's may change before or after the table.
    for (const id of this.dirty) {
      const rec = vips.get(id);
      if (!rec || !(rec.value.flags & KP_VIP_F_AUTO_LEN)) continue;
      const n = this.tableBackends(rec).length;
      if (!autoTableFits(rec.value.tableLen, n)) this.writeVip(rec, { ...rec.value, tableLen: autoTableLen(n) });
    }
    this.flushWrites();
    // Every table of the batch built at once (on two threads when there are many), then published:
    // all backends first, then the local-only tables of VIPs with a local traffic policy (none with
    // a local endpoint: no table, and their local entries drop new connections).
    const wanted: { rec: VipRecord; local: boolean; use: Slot[] }[] = [];
    for (const id of this.dirty) {
      const rec = vips.get(id);
      if (!rec) continue;
      wanted.push({ rec, local: false, use: this.tableBackends(rec) });
      if (rec.value.flags & POLICY_LOCAL) wanted.push({ rec, local: true, use: this.tableBackends(rec, true) });
    }
    const jobs = wanted.filter((w) => w.use.length);
    const built = buildMaglevTables(jobs.map((w) => ({ backends: maglevBackends(w.use), size: w.rec.value.tableLen, tag: maglevTableTag(w.rec, w.local) })));
    const tables = jobs.map((w, i) => [w.local, w.rec.id, built[i]] as const);
    for (const local of [false, true]) {
      const mine = tables.filter((x) => x[0] === local).map(([, id, t]) => [id, t] as const);
      if (mine.length) this.dp.setMaglevTables(mine, local);
      for (const w of wanted) if (w.local === local && !w.use.length && this.dp.hasMaglevTable(w.rec.id, local)) this.dp.clearMaglevTable(w.rec.id, local);
    }
    this.dirty.clear();
    for (const [id, flush] of this.pendingRemovals) {
      if (flush) this.freeBackend(id);
      else this.writeBackend(id, { ...this.slots[id]!, state: BACKEND_STATE.draining });
    }
    this.pendingRemovals.clear();
  }

  /** The deferred writes (src/dataplane/writebatch.ts), in the order a reader needs. */
  private flushWrites(): void {
    const w = this.writes;
    this.writes = undefined;
    w?.flush(this.maps);
  }

  /**
   * Free draining backends that no live connection uses any more (VPP frees an AS once its flows
   * time out). Walks kp_ct only when something is draining.
   */
  collectDrained(timeouts: CtTimeouts): number[] {
    this.load();
    const draining = new Map<number, Backend>();
    for (const id of this.drainingIds) draining.set(id, this.slots[id]!);
    if (!draining.size) return [];
    const inUse = backendsInUse(this.dp, timeouts, new Map([...draining].map(([id, b]) => [id, b.addr])));
    const freed = [...draining].filter(([id, b]) => !inUse.get(id)?.has(b.gen)).map(([id]) => id);
    for (const id of freed) this.freeBackend(id);
    return freed;
  }
}
