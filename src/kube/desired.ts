// The Kubernetes source's desired state: Services, EndpointSlices and this node as the watches
// report them, and each service's VIPs as translate.ts makes them. Handlers only record (the
// service keys they touch become dirty); take() translates the dirty services, and the caller
// applies what changed and commits it. The source never writes a map.
import { AFFINITY_TIMEOUT_DEFAULT, AFFINITY_TIMEOUT_MAX, KP_NODEPORT_MAX, KP_NODEPORT_MIN, type KpVipConfig } from '../config/types.js';
import { translateService, type NodeView, type VipJson } from './translate.js';
import { keyOf, SERVICE_NAME_LABEL, type EndpointSlice, type Service } from './types.js';

export interface ServiceChange {
  key: string;
  before: KpVipConfig[];
  after: KpVipConfig[];
}

export interface TakeResult {
  changes: ServiceChange[];
  /** services whose VIPs the data plane cannot take, with what is wrong (they keep what they had) */
  invalid: Array<{ key: string; details: string[] }>;
  /** what translations left out (another proxy's port protocol, a VIP another service holds, ...) */
  notes: Array<{ key: string; notes: string[] }>;
}

const vipClaim = (v: { prefix: string; protocol: string; port: number }) => `${v.prefix} ${v.protocol} ${v.port}`;
const nodePortClaim = (v: VipJson) => `nodeport ${v.protocol} ${v.node_port} ${v.prefix.includes(':') ? 6 : 4}`;

export class DesiredServices {
  private readonly services = new Map<string, Service>();
  private readonly slicesOf = new Map<string, Map<string, EndpointSlice>>();
  private readonly sliceOwner = new Map<string, string>();
  /** what each service's VIPs are in the data plane (committed) */
  private readonly built = new Map<string, KpVipConfig[]>();
  /** a claim (a VIP's identity, a node port) -> the services that want it; the oldest holds it */
  private readonly claims = new Map<string, Set<string>>();
  private readonly wants = new Map<string, string[]>();
  readonly dirty = new Set<string>();
  /** services refused at their last translation (they keep what they had) */
  readonly invalid = new Set<string>();
  node: NodeView;

  constructor(nodeName: string) {
    this.node = { name: nodeName };
  }

  setService(svc: Service, gone = false): void {
    const key = keyOf(svc);
    if (gone) this.services.delete(key);
    else this.services.set(key, svc);
    this.dirty.add(key);
  }

  setSlice(slice: EndpointSlice, gone = false): void {
    const key = keyOf(slice);
    const was = this.sliceOwner.get(key);
    const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
    const owner = !gone && name ? `${slice.metadata?.namespace ?? ''}/${name}` : undefined;
    if (was && was !== owner) {
      this.slicesOf.get(was)?.delete(key);
      if (!this.slicesOf.get(was)?.size) this.slicesOf.delete(was);
      this.sliceOwner.delete(key);
      this.dirty.add(was);
    }
    if (owner) {
      let m = this.slicesOf.get(owner);
      if (!m) this.slicesOf.set(owner, (m = new Map()));
      m.set(key, slice);
      this.sliceOwner.set(key, owner);
      this.dirty.add(owner);
    }
  }

  /** This node's zone (topology hints): a change re-translates every service. */
  setNode(view: NodeView): void {
    if (view.name === this.node.name && view.zone === this.node.zone) return;
    this.node = view;
    for (const k of this.services.keys()) this.dirty.add(k);
    for (const k of this.built.keys()) this.dirty.add(k);
  }

  /** Every service again (a conf change). */
  markAll(): void {
    for (const k of this.services.keys()) this.dirty.add(k);
    for (const k of this.built.keys()) this.dirty.add(k);
  }

  serviceCount(): number {
    return this.services.size;
  }

  /** Every committed VIP. */
  vips(): KpVipConfig[] {
    const out: KpVipConfig[] = [];
    for (const vs of this.built.values()) for (const v of vs) out.push(v);
    return out;
  }

  /** Every VIP as it will be once `changes` are applied. */
  vipsWith(changes: ServiceChange[]): KpVipConfig[] {
    const changed = new Map(changes.map((c) => [c.key, c.after]));
    const out: KpVipConfig[] = [];
    for (const [k, vs] of this.built) if (!changed.has(k)) for (const v of vs) out.push(v);
    for (const vs of changed.values()) for (const v of vs) out.push(v);
    return out;
  }

  vipsOf(key: string): KpVipConfig[] {
    return this.built.get(key) ?? [];
  }

  /** Is `a` older than `b` (creationTimestamp, then namespace/name): the older service holds a claim. */
  private older(a: string, b: string): boolean {
    const ta = this.services.get(a)?.metadata?.creationTimestamp ?? '';
    const tb = this.services.get(b)?.metadata?.creationTimestamp ?? '';
    return ta !== tb ? ta < tb : a < b;
  }

  private holder(claim: string): string | undefined {
    const set = this.claims.get(claim);
    if (!set) return undefined;
    let best: string | undefined;
    for (const k of set) if (best === undefined || this.older(k, best)) best = k;
    return best;
  }

  /** Record what `key` wants now; services whose hold on a claim this changes become dirty. */
  private reclaim(key: string, want: string[], requeue: (k: string) => void): void {
    const had = this.wants.get(key);
    if (had && had.length === want.length && had.every((c, i) => c === want[i])) return; // the usual case: the same claims
    const before = new Set(had ?? []);
    const now = new Set(want);
    const touched = [...before].filter((c) => !now.has(c)).concat([...now].filter((c) => !before.has(c)));
    const holders = touched.map((c) => this.holder(c));
    for (const c of before) if (!now.has(c)) this.claims.get(c)?.delete(key);
    for (const c of now) {
      let s = this.claims.get(c);
      if (!s) this.claims.set(c, (s = new Set()));
      s.add(key);
    }
    touched.forEach((c, i) => {
      const h = this.holder(c);
      if (h !== holders[i]) for (const other of this.claims.get(c) ?? []) if (other !== key) requeue(other);
      if (!this.claims.get(c)?.size) this.claims.delete(c);
    });
    if (want.length) this.wants.set(key, want);
    else this.wants.delete(key);
  }

  /**
   * Translate the dirty services (and those whose claims they move). `conf` is the config file's
   * conf object, against which each service's VIPs are validated as a file's would be.
   */
  take(conf: Record<string, unknown>): TakeResult {
    // The node port range VIPs are checked against (conf itself was checked with the file).
    const range = typeof conf.nodeport_range === 'string' ? (conf.nodeport_range.split('-').map(Number) as [number, number]) : ([KP_NODEPORT_MIN, KP_NODEPORT_MAX] as [number, number]);
    const queue = [...this.dirty];
    const pending = new Set(queue);
    this.dirty.clear();
    // A service whose hold on a claim changed is translated (again) after the others.
    const requeue = (k: string) => {
      if (pending.has(k)) return;
      pending.add(k);
      queue.push(k);
    };
    const changes = new Map<string, ServiceChange>();
    const invalid: TakeResult['invalid'] = [];
    const notes: TakeResult['notes'] = [];
    for (let i = 0; i < queue.length; i++) {
      const key = queue[i];
      pending.delete(key);
      const svc = this.services.get(key);
      const tr = svc ? translateService(svc, [...(this.slicesOf.get(key)?.values() ?? [])], this.node) : { vips: [], notes: [] };
      const claimsOf = tr.vips.map((v) => (v.node_port ? [vipClaim(v), nodePortClaim(v)] : [vipClaim(v)]));
      this.reclaim(key, claimsOf.flat(), requeue);
      const held = tr.vips.filter((_, j) => {
        const lost = claimsOf[j].find((c) => this.holder(c) !== key);
        if (lost) tr.notes.push(`${lost.startsWith('nodeport') ? lost : `VIP ${lost}`} is held by ${this.holder(lost)} (an older service)`);
        return !lost;
      });
      const had = notes.length ? notes.findIndex((n) => n.key === key) : -1;
      if (had >= 0) notes.splice(had, 1); // translated again: its last notes count
      if (tr.notes.length && svc) notes.push({ key, notes: tr.notes });
      const details: string[] = [];
      const after = held.map((v, j) => buildVip(v, range, `/vips/${j}`, details));
      if (details.length) {
        invalid.push({ key, details });
        this.invalid.add(key);
        continue;
      }
      this.invalid.delete(key);
      const before = changes.get(key)?.before ?? this.built.get(key) ?? [];
      if (sameVips(before, after)) changes.delete(key);
      else changes.set(key, { key, before, after });
    }
    return { changes: [...changes.values()], invalid, notes };
  }

  /** The changes are in the data plane now. */
  commit(changes: ServiceChange[]): void {
    for (const c of changes) {
      if (c.after.length) this.built.set(c.key, c.after);
      else this.built.delete(c.key);
    }
  }

  /** The changes could not be applied: their services are dirty again (for a retry). */
  retry(changes: ServiceChange[]): void {
    for (const c of changes) this.dirty.add(c.key);
  }
}

/**
 * A translated VIP as the reconciler takes it. The translation made every address and prefix
 * canonical and every port a port; what is left to check is what the API allows and kpbpf's conf
 * may not: a node port outside conf's range, an affinity timeout past its bound.
 */
export function buildVip(v: VipJson, [min, max]: [number, number], at: string, errs: string[]): KpVipConfig {
  if (v.node_port && (v.node_port < min || v.node_port > max)) errs.push(`${at}/node_port: must be within the node port range ${min}-${max}, got ${v.node_port}`);
  if (v.session_affinity_timeout !== undefined && (v.session_affinity_timeout < 1 || v.session_affinity_timeout > AFFINITY_TIMEOUT_MAX)) {
    errs.push(`${at}/session_affinity_timeout: must be from 1 to ${AFFINITY_TIMEOUT_MAX}, got ${v.session_affinity_timeout}`);
  }
  const backends: KpVipConfig['backends'] = new Array(v.backends.length);
  for (let i = 0; i < v.backends.length; i++) {
    const b = v.backends[i];
    const o: KpVipConfig['backends'][number] = { address: b.address, weight: 1 };
    if (b.local) o.local = true;
    if (b.terminating) o.terminating = true;
    backends[i] = o;
  }
  // (fields assigned in one order, as above: 20k VIPs share a few hidden classes)
  const out = {
    prefix: v.prefix,
    family: v.prefix.includes(':') ? 6 : 4,
    protocol: v.protocol,
    port: v.port,
    target_port: v.target_port,
    node_port: v.node_port ?? 0,
    type: v.type,
    source_ranges: v.source_ranges ? [...v.source_ranges].sort() : [],
  } as KpVipConfig;
  if (v.external_traffic_policy) out.external_traffic_policy = 'local';
  if (v.health_check_node_port) out.health_check_node_port = v.health_check_node_port;
  out.name = v.name;
  if (v.session_affinity) out.session_affinity_timeout = v.session_affinity_timeout ?? AFFINITY_TIMEOUT_DEFAULT;
  if (v.internal_traffic_policy) out.internal_traffic_policy = 'local';
  out.backends = backends;
  return out;
}

const SCALARS = ['prefix', 'protocol', 'port', 'target_port', 'new_len', 'node_port', 'type', 'external_traffic_policy', 'internal_traffic_policy', 'session_affinity_timeout', 'health_check_node_port', 'name', 'encap'] as const;

/** The same VIPs, field by field (no strings made: a full sync compares 10k services). */
function sameVips(a: KpVipConfig[], b: KpVipConfig[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    for (const k of SCALARS) if (x[k] !== y[k]) return false;
    if (x.source_ranges.length !== y.source_ranges.length || x.source_ranges.some((r, j) => r !== y.source_ranges[j])) return false;
    if (x.backends.length !== y.backends.length) return false;
    for (let j = 0; j < x.backends.length; j++) {
      const p = x.backends[j];
      const q = y.backends[j];
      if (p.address !== q.address || p.weight !== q.weight || p.local !== q.local || p.terminating !== q.terminating) return false;
    }
  }
  return true;
}
