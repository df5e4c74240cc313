// Plan the operations that turn the running data plane into the desired config.
import { canonicalAddress, canonicalPrefix } from './address.js';
import { TIMEOUT_NAMES, type TimeoutName } from './timeouts.js';
import type { KpConfig, KpConfConfig, KpVipConfig, L4Protocol, XdpMode } from './types.js';

export type BackendState = 'active' | 'draining';

export interface RunningBackend {
  address: string;
  weight: number;
  state: BackendState;
  local?: boolean;
  terminating?: boolean;
}

export interface RunningVip extends VipRef, VipSettings {
  backends: RunningBackend[];
}

export interface RunningInterface {
  name: string;
  /** The mode the program is attached in. */
  mode: XdpMode;
  /** Whether it is in kp_tx_ports; left out when unknown (then never compared). */
  redirect?: boolean;
}

export interface RunningState {
  conf: KpConfConfig;
  interfaces: RunningInterface[];
  vips: RunningVip[];
}

/** A VIP's identity: canonical prefix, protocol, port. */
export interface VipRef {
  /** "addr/len" (a bare address is read as a host prefix); canonicalised before comparing. */
  prefix: string;
  protocol: L4Protocol;
  port: number;
}

/** What a VIP is besides its identity and backends (the config's fields of the same names). */
export type VipSettings = Pick<
  KpVipConfig,
  'target_port' | 'new_len' | 'node_port' | 'type' | 'source_ranges' | 'external_traffic_policy' | 'internal_traffic_policy' | 'session_affinity_timeout' | 'encap'
>;

type ConfChange = 'buckets' | 'hash_seed' | 'nodeport_range' | 'nodeport_addresses' | 'masquerade_address' | 'masquerade_address6' | 'masquerade_ports' | 'nat46_prefix' | TimeoutName;

export type PlanOp =
  | { op: 'detach'; name: string }
  | ({ op: 'setConf'; changed: ConfChange[] } & KpConfConfig)
  | { op: 'delVip'; vip: VipRef }
  | ({ op: 'addVip'; vip: VipRef } & VipSettings)
  | ({ op: 'updateVip'; vip: VipRef; changed: (keyof VipSettings)[] } & VipSettings)
  | { op: 'addBackend'; vip: VipRef; address: string; weight: number; reactivate: boolean; local?: boolean; terminating?: boolean }
  | { op: 'setWeight'; vip: VipRef; address: string; weight: number; from: number; local?: boolean; terminating?: boolean }
  | { op: 'delBackend'; vip: VipRef; address: string }
  | { op: 'attach'; name: string; mode: XdpMode; redirect: boolean }
  | { op: 'setRedirect'; name: string; redirect: boolean };

/**
 * Ordered operations. Order: detach, setConf, delVip, then per desired VIP (in config order)
 * addVip or updateVip, addBackend, setWeight, delBackend (adds before deletes, so a VIP
 * never goes empty on the way), and attach/setRedirect last, once the maps hold the config.
 */
export type Plan = PlanOp[];

const vipKey = (v: VipRef) => `${v.prefix} ${v.protocol} ${v.port}`;

/** An attachment in `running` serves `desired` mode: auto accepts whatever was attached. */
function modeMatches(desired: XdpMode, running: XdpMode): boolean {
  return desired === 'auto' || desired === running;
}

const settingsOf = (v: VipSettings): VipSettings => ({
  target_port: v.target_port,
  ...(v.new_len !== undefined ? { new_len: v.new_len } : {}),
  node_port: v.node_port,
  type: v.type,
  source_ranges: [...v.source_ranges].sort(),
  ...(v.external_traffic_policy === 'local' ? { external_traffic_policy: 'local' as const } : {}),
  ...(v.session_affinity_timeout ? { session_affinity_timeout: v.session_affinity_timeout } : {}),
  ...(v.internal_traffic_policy === 'local' ? { internal_traffic_policy: 'local' as const } : {}),
  ...(v.encap ? { encap: v.encap } : {}),
});

/** The words `vip add` takes for the settings that are not the defaults. */
const settingsText = (op: VipSettings): string =>
  `target ${op.target_port} new_len ${op.new_len ?? 'auto'}${op.node_port ? ` nodeport ${op.node_port}` : ''}` +
  `${op.type !== 'clusterip' && !(op.type === 'nodeport' && op.node_port) ? ` type ${op.type}` : ''}` +
  `${op.source_ranges.length ? ` source_ranges ${op.source_ranges.join(',')}` : ''}` +
  `${op.external_traffic_policy ? ' etp local' : ''}${op.internal_traffic_policy ? ' itp local' : ''}` +
  `${op.session_affinity_timeout ? ` affinity clientip affinity_timeout ${op.session_affinity_timeout}` : ''}` +
  `${op.encap ? ` encap ${op.encap}` : ''}`;

/** A backend's marks, as ops carry them (left out when false). */
const marks = (b: { local?: boolean; terminating?: boolean }) => ({ ...(b.local ? { local: true } : {}), ...(b.terminating ? { terminating: true } : {}) });
/** `op` with the backend's marks set (a full sync makes 80k of these: no object spread). */
function withMarks<T extends { local?: boolean; terminating?: boolean }>(op: T, b: { local?: boolean; terminating?: boolean }): T {
  if (b.local) op.local = true;
  if (b.terminating) op.terminating = true;
  return op;
}
const marksText = (b: { local?: boolean; terminating?: boolean }) => `${b.local ? ' local' : ''}${b.terminating ? ' terminating' : ''}`;

export function diffConfig(desired: KpConfig, running: RunningState): Plan {
  const plan: Plan = [];
  const runIf = new Map(running.interfaces.map((i) => [i.name, i]));
  const wantIf = new Map(desired.interfaces.map((i) => [i.name, i]));
  for (const r of running.interfaces) {
    const d = wantIf.get(r.name);
    if (!d || !modeMatches(d.mode, r.mode)) plan.push({ op: 'detach', name: r.name });
  }

  const changed: ConfChange[] = [];
  if (desired.conf.buckets !== running.conf.buckets) changed.push('buckets');
  changed.push(...TIMEOUT_NAMES.filter((n) => desired.conf.timeouts[n] !== running.conf.timeouts[n]));
  // A config without a seed keeps the running one.
  const seed = desired.conf.hash_seed;
  if (seed !== undefined && seed !== running.conf.hash_seed) changed.push('hash_seed');
  if (desired.conf.nodeport_range.join('-') !== running.conf.nodeport_range.join('-')) changed.push('nodeport_range');
  if (desired.conf.nodeport_addresses.join() !== running.conf.nodeport_addresses.join()) changed.push('nodeport_addresses');
  const masqAddr = desired.conf.masquerade_address; // left out: the running one stays
  if (masqAddr !== undefined && masqAddr !== running.conf.masquerade_address) changed.push('masquerade_address');
  const masqAddr6 = desired.conf.masquerade_address6;
  if (masqAddr6 !== undefined && masqAddr6 !== running.conf.masquerade_address6) changed.push('masquerade_address6');
  if (desired.conf.masquerade_ports.join('-') !== running.conf.masquerade_ports.join('-')) changed.push('masquerade_ports');
  const nat46 = desired.conf.nat46_prefix; // left out: the running one stays
  if (nat46 !== undefined && nat46 !== running.conf.nat46_prefix) changed.push('nat46_prefix');
  if (changed.length) {
    plan.push({
      op: 'setConf',
      buckets: desired.conf.buckets,
      timeouts: { ...desired.conf.timeouts },
      ...(seed !== undefined ? { hash_seed: seed } : {}),
      nodeport_range: [...desired.conf.nodeport_range],
      nodeport_addresses: [...desired.conf.nodeport_addresses],
      ...(masqAddr !== undefined ? { masquerade_address: masqAddr } : {}),
      ...(masqAddr6 !== undefined ? { masquerade_address6: masqAddr6 } : {}),
      ...(nat46 !== undefined ? { nat46_prefix: nat46 } : {}),
      masquerade_ports: [...desired.conf.masquerade_ports],
      changed,
    });
  }

  const ref = (v: VipRef): VipRef => ({ prefix: canonicalPrefix(v.prefix), protocol: v.protocol, port: v.port });
  const runVips = new Map(running.vips.map((v) => [vipKey(ref(v)), v]));
  const wantRefs = desired.vips.map(ref);
  const wantKeys = wantRefs.map(vipKey);
  const wanted = new Set(wantKeys);
  for (const r of running.vips) {
    if (!wanted.has(vipKey(ref(r)))) plan.push({ op: 'delVip', vip: ref(r) });
  }

  desired.vips.forEach((d, i) => {
    const vip = wantRefs[i];
    const r = runVips.get(wantKeys[i]);
    if (!r) {
      plan.push({ op: 'addVip', vip, ...settingsOf(d) });
      for (const b of d.backends) {
        const op: Extract<PlanOp, { op: 'addBackend' }> = { op: 'addBackend', vip, address: canonicalAddress(b.address), weight: b.weight, reactivate: false };
        plan.push(withMarks(op, b));
      }
      return;
    }
    const want = settingsOf(d);
    const have = settingsOf(r);
    const keys = [...new Set([...Object.keys(want), ...Object.keys(have)])] as (keyof VipSettings)[];
    const vc = keys.filter((k) => String(want[k]) !== String(have[k]));
    if (vc.length) plan.push({ op: 'updateVip', vip, ...want, changed: vc });

    // An address may be listed twice while one copy drains; the active copy decides.
    const runBe = new Map<string, RunningBackend>();
    for (const b of r.backends) {
      const a = canonicalAddress(b.address);
      const prev = runBe.get(a);
      if (!prev || (prev.state === 'draining' && b.state === 'active')) runBe.set(a, b);
    }
    const wantBe = new Set<string>();
    const weights: PlanOp[] = [];
    for (const b of d.backends) {
      const address = canonicalAddress(b.address);
      wantBe.add(address);
      const rb = runBe.get(address);
      if (!rb || rb.state === 'draining') {
        plan.push({ op: 'addBackend', vip, address, weight: b.weight, reactivate: rb !== undefined, ...marks(b) });
      } else if (rb.weight !== b.weight || Boolean(rb.local) !== Boolean(b.local) || Boolean(rb.terminating) !== Boolean(b.terminating)) {
        weights.push({ op: 'setWeight', vip, address, weight: b.weight, from: rb.weight, ...marks(b) });
      }
    }
    plan.push(...weights);
    for (const [address, rb] of runBe) {
      // A draining backend is already out of the table; its flows end on their own.
      if (!wantBe.has(address) && rb.state === 'active') plan.push({ op: 'delBackend', vip, address });
    }
  });

  for (const d of desired.interfaces) {
    const r = runIf.get(d.name);
    if (!r || !modeMatches(d.mode, r.mode)) plan.push({ op: 'attach', name: d.name, mode: d.mode, redirect: d.redirect });
    else if (r.redirect !== undefined && r.redirect !== d.redirect) plan.push({ op: 'setRedirect', name: d.name, redirect: d.redirect });
  }
  return plan;
}

const vipText = (v: VipRef) => `${v.prefix} ${v.protocol} port ${v.port}`;

/** One line per operation, in the CLI's words. */
export function formatOp(op: PlanOp): string {
  switch (op.op) {
    case 'detach':
      return `detach ${op.name}`;
    case 'attach':
      return `attach ${op.name} mode ${op.mode}${op.redirect ? ' redirect' : ''}`;
    case 'setRedirect':
      return `${op.redirect ? 'allow' : 'stop'} redirect on ${op.name}`;
    case 'setConf':
      return `conf ${op.changed
        .map((c) => {
          if (c === 'buckets') return `buckets ${op.buckets}`;
          if (c === 'hash_seed') return `hash_seed ${op.hash_seed}`;
          if (c === 'nodeport_range') return `nodeport_range ${op.nodeport_range.join('-')}`;
          if (c === 'nodeport_addresses') return `nodeport_addresses ${op.nodeport_addresses.length ? op.nodeport_addresses.join(',') : 'all'}`;
          if (c === 'masquerade_address') return `masquerade_address ${op.masquerade_address}`;
          if (c === 'masquerade_address6') return `masquerade_address6 ${op.masquerade_address6}`;
          if (c === 'nat46_prefix') return `nat46_prefix ${op.nat46_prefix}`;
          if (c === 'masquerade_ports') return `masquerade_ports ${op.masquerade_ports.join('-')}`;
          return `timeout ${c} ${op.timeouts[c]}`;
        })
        .join(' ')}`;
    case 'delVip':
      return `vip del ${vipText(op.vip)}`;
    case 'addVip':
      return `vip add ${vipText(op.vip)} ${settingsText(op)}`;
    case 'updateVip':
      return `vip update ${vipText(op.vip)} ${settingsText(op)}`;
    case 'addBackend':
      return `backend ${op.reactivate ? 'reactivate' : 'add'} ${vipText(op.vip)} ${op.address} weight ${op.weight}${marksText(op)}`;
    case 'setWeight':
      return `backend weight ${vipText(op.vip)} ${op.address} ${op.from} -> ${op.weight}${marksText(op)}`;
    case 'delBackend':
      return `backend del ${vipText(op.vip)} ${op.address}`;
  }
}
