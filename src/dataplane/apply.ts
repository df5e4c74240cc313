// `kpbpf apply`: diff the config against the running state and carry the plan out, all or nothing.
import { KpError } from '../errors.js';
import { diffConfig, formatOp, type PlanOp, type RunningState, type VipRef } from '../config/diff.js';
import { KP_CONFIG_DEFAULTS, KP_NODEPORT_MAX, KP_NODEPORT_MIN, type KpConfig } from '../config/types.js';
import { DEFAULT_TIMEOUTS } from '../config/timeouts.js';
import { KP_MASQ_PORT_MAX, KP_MASQ_PORT_MIN } from '../config/masq.js';
import type { Control } from './control.js';
import { endMaglevPrefetch, hasMaglevPrefetch, PARALLEL_MIN_JOBS, prefetchMaglevTables, prepareMaglevHelper, type PrefetchJob } from '../maglev/parallel.js';
import { KP_MAX_SRC_RANGES, KP_MAX_VIP_PREFIXES, KP_MAX_VIPS, type VipHandle } from './vips.js';
import { configTables, maglevTableTag } from '../maglev/expected.js';
import { ifNameToIndex } from '../sys/libbpf.js';
import { injectAt } from '../inject.js';

export interface ApplyResult {
  /** the plan in the CLI's words (made when first read: 90k lines for a full sync of 10k VIPs) */
  readonly ops: string[];
  plan: PlanOp[];
}

function result(plan: PlanOp[]): ApplyResult {
  let ops: string[] | undefined;
  return {
    plan,
    get ops() {
      return (ops ??= plan.map(formatOp));
    },
  };
}

export interface ApplyOptions {
  dryRun: boolean;
  /** manage attachments only when the config says which interfaces it wants */
  manageInterfaces?: boolean;
  /**
   * Only these VIPs can differ from the running state (the daemon knows what it applied last):
   * the others are neither read back nor compared. Capacity is still checked on the whole config.
   */
  onlyVips?: VipRef[];
  /** the VIPs of the config among onlyVips, when the caller knows them (else they are looked for) */
  onlyDesired?: KpConfig['vips'];
  /** free drained backends no connection uses now (a walk of kp_ct); default true. The daemon
   * does it on a timer instead of at every reload. */
  collectDrained?: boolean;
  /** vipCounts(desired.vips), when the caller keeps them */
  counts?: VipCounts;
  /**
   * A UDP VIP's removed backend is freed at once rather than drained, so that its flows pick a
   * serving backend at their next datagram (kube-proxy's UDP conntrack cleanup: a UDP flow has no
   * end for a drain to wait for).
   */
  flushUdp?: boolean;
}

/** The running state; with `only`, of those VIPs alone (those that exist). */
export function runningState(control: Control, desired?: KpConfig, only?: VipRef[]): RunningState {
  const conf = control.conf();
  const views = only
    ? only.flatMap((r) => {
        const v = control.vips.lookup(r.prefix, r.protocol, r.port);
        return v ? [v] : [];
      })
    : control.listVips();
  const wanted = new Map((desired?.interfaces ?? []).map((i) => [i.name, i]));
  return {
    conf: {
      buckets: conf.buckets,
      timeouts: conf.timeouts,
      hash_seed: conf.hashSeed,
      nodeport_range: conf.nodePortRange.split('-').map(Number) as [number, number],
      nodeport_addresses: conf.nodePortAddresses,
      masquerade_address: conf.masqueradeAddress,
      masquerade_address6: conf.masqueradeAddress6,
      nat46_prefix: conf.nat46Prefix,
      masquerade_ports: conf.masqueradePorts.split('-').map(Number) as [number, number],
    },
    // The kernel does not report a link's XDP mode through bpf_link_info; an attached interface is
    // taken to be in the mode the config asks for.
    interfaces: control.links().map((l) => ({ name: l.ifname, mode: wanted.get(l.ifname)?.mode ?? 'auto', redirect: l.redirect })),
    vips: views.map((v) => ({
      prefix: v.prefix,
      protocol: v.protocol,
      port: v.port,
      target_port: v.targetPort,
      ...(v.newLenAuto ? {} : { new_len: v.newLen }),
      node_port: v.nodePort ?? 0,
      type: v.type ?? 'clusterip',
      source_ranges: v.sourceRanges ?? [],
      ...(v.externalTrafficPolicy === 'local' ? { external_traffic_policy: 'local' as const } : {}),
      ...(v.sessionAffinityTimeout ? { session_affinity_timeout: v.sessionAffinityTimeout } : {}),
      ...(v.encap ? { encap: v.encap } : {}),
      ...(v.internalTrafficPolicy === 'local' ? { internal_traffic_policy: 'local' as const } : {}),
      backends: v.backends.map((b) => ({ address: b.address, weight: b.weight, state: b.state, ...(b.local ? { local: true } : {}), ...(b.terminating ? { terminating: true } : {}) })),
    })),
  };
}

/** A VIP's identity as text (prefixes are canonical in configs and running states). */
export const vipRefKey = (v: VipRef) => `${v.prefix} ${v.protocol} ${v.port}`;

/** The running state as a config, to roll back to. */
function asConfig(s: RunningState): KpConfig {
  return {
    conf: s.conf,
    interfaces: s.interfaces.map((i) => ({ name: i.name, mode: i.mode, redirect: Boolean(i.redirect) })),
    vips: s.vips.map((v) => ({
      prefix: v.prefix,
      family: v.prefix.includes(':') ? 6 : 4,
      protocol: v.protocol,
      port: v.port,
      target_port: v.target_port,
      ...(v.new_len !== undefined ? { new_len: v.new_len } : {}),
      node_port: v.node_port,
      type: v.type,
      source_ranges: v.source_ranges,
      ...(v.external_traffic_policy ? { external_traffic_policy: v.external_traffic_policy } : {}),
      ...(v.session_affinity_timeout ? { session_affinity_timeout: v.session_affinity_timeout } : {}),
      // (without it, a rollback turned each NAT46/NAT64 VIP back into a same-family one, draining its backends)
      ...(v.encap ? { encap: v.encap } : {}),
      ...(v.internal_traffic_policy ? { internal_traffic_policy: v.internal_traffic_policy } : {}),
      backends: v.backends.filter((b) => b.state === 'active').map((b) => ({ address: b.address, weight: b.weight, ...(b.local ? { local: true } : {}), ...(b.terminating ? { terminating: true } : {}) })),
    })),
  };
}

/** Interfaces to attach must exist: found out before anything changes, not after the VIPs. */
export function checkInterfaces(plan: PlanOp[]): void {
  const missing = plan.flatMap((o) => (o.op === 'attach' && !ifNameToIndex(o.name) ? [o.name] : []));
  if (missing.length) {
    throw new KpError('KP_ERR_CONFIG', `interfaces not found: ${missing.join(', ')}; nothing was applied`, {
      details: missing.map((n) => `/interfaces: '${n}' does not exist in this network namespace`),
    });
  }
}

/** The length of a canonical "addr/len" prefix, read without making strings. */
function prefixLength(p: string): number {
  let len = 0;
  for (let k = p.lastIndexOf('/') + 1; k < p.length; k++) len = len * 10 + p.charCodeAt(k) - 48;
  return len;
}

/** What a config's VIPs take of the maps with a fixed size. */
export interface VipCounts {
  prefixes: number;
  exactVips: number;
  nodePortVips: number;
  ranges: number;
}

/** `c` with VIP `v` counted in (`sign` 1) or out (-1); no strings made. */
export function countVip(c: VipCounts, v: KpConfig['vips'][number], sign: 1 | -1): VipCounts {
  const prefix = prefixLength(v.prefix) < (v.family === 6 ? 128 : 32);
  return {
    prefixes: c.prefixes + (prefix ? sign : 0),
    exactVips: c.exactVips + (prefix ? 0 : sign),
    nodePortVips: c.nodePortVips + (v.node_port ? sign : 0),
    ranges: c.ranges + sign * v.source_ranges.length,
  };
}

export function vipCounts(vips: KpConfig['vips']): VipCounts {
  let c: VipCounts = { prefixes: 0, exactVips: 0, nodePortVips: 0, ranges: 0 };
  for (const v of vips) c = countVip(c, v, 1);
  return c;
}

/** Every map the config fills, checked against its size before anything changes: a capacity
 * found half way would leave live VIPs deleted and re-created. `counts`: the config's, when the
 * caller keeps them (a reload of one VIP among 10k). */
function checkCapacity(control: Control, plan: PlanOp[], desired: KpConfig, counts = vipCounts(desired.vips)): void {
  const { prefixes, exactVips, nodePortVips, ranges } = counts;
  if (prefixes > KP_MAX_VIP_PREFIXES) {
    throw new KpError('KP_ERR_CONFIG', `the config has ${prefixes} prefix VIPs but kp_vip_pfx holds ${KP_MAX_VIP_PREFIXES}; nothing was applied`);
  }
  // Node port entries of prefix VIPs count too: they are kp_vips entries like the exact VIPs'.
  const nodeAddrs = nodePortVips ? control.nodeAddresses().length : 0;
  const exact = exactVips + nodePortVips * nodeAddrs;
  if (exact > KP_MAX_VIPS) {
    throw new KpError('KP_ERR_CONFIG', `the config needs ${exact} kp_vips entries (VIPs, and node ports on ${nodeAddrs} node addresses) but kp_vips holds ${KP_MAX_VIPS}; nothing was applied`);
  }
  if (ranges > KP_MAX_SRC_RANGES) {
    throw new KpError('KP_ERR_CONFIG', `the config has ${ranges} source ranges but kp_src_ranges holds ${KP_MAX_SRC_RANGES}; nothing was applied`);
  }
  const cap = control.vips.capacity();
  let newVips = 0;
  let freedVips = 0;
  let newBackends = 0;
  for (const o of plan) {
    if (o.op === 'addVip') newVips++;
    else if (o.op === 'delVip') freedVips++;
    else if (o.op === 'addBackend' && !o.reactivate) newBackends++;
  }
  if (newVips > cap.vipIds + freedVips) {
    throw new KpError('KP_ERR_CONFIG', `the config needs ${newVips} new VIPs but only ${cap.vipIds + freedVips} VIP ids are free; nothing was applied`);
  }
  // Slots freed by deletions are not counted: drained backends may still hold them.
  if (newBackends > cap.backendSlots) {
    throw new KpError('KP_ERR_CONFIG', `the config needs ${newBackends} new backends but only ${cap.backendSlots} backend slots are free; nothing was applied`);
  }
}

/**
 * Whole VIPs are deleted last, so that an apply failing on the way leaves them as they were (a
 * deleted VIP re-created by the rollback would get new backend ids and generations, resetting its
 * connections). They go first only when what they free is needed: the ids, slots or map entries
 * the config's new VIPs take while the old ones still exist, or a node port a VIP takes over.
 */
export function orderDeletes(control: Control, plan: PlanOp[], desired: KpConfig): PlanOp[] {
  const dels = plan.filter((o) => o.op === 'delVip');
  if (!dels.length) return plan;
  const isPrefix = (p: string) => prefixLength(p) < (p.includes(':') ? 128 : 32);
  const adds = plan.filter((o): o is Extract<PlanOp, { op: 'addVip' }> => o.op === 'addVip');
  const cap = control.vips.capacity();
  const used = control.vips.usage();
  const nodeAddrs = adds.some((a) => a.node_port) ? control.nodeAddresses().length : 0;
  const wanted = new Map(desired.vips.map((v) => [vipRefKey(v), v]));
  const newRanges = adds.reduce((n, a) => n + a.source_ranges.length, 0);
  const roomWithoutDeletes =
    adds.length <= cap.vipIds &&
    plan.filter((o) => o.op === 'addBackend' && !o.reactivate).length <= cap.backendSlots &&
    used.prefixes + adds.filter((a) => isPrefix(a.vip.prefix)).length <= KP_MAX_VIP_PREFIXES &&
    used.exactEntries + adds.reduce((n, a) => n + (isPrefix(a.vip.prefix) ? 0 : 1) + (a.node_port ? nodeAddrs : 0), 0) <= KP_MAX_VIPS &&
    used.srcRanges + newRanges <= KP_MAX_SRC_RANGES;
  if (!roomWithoutDeletes) return [...dels, ...plan.filter((o) => o.op !== 'delVip')];
  // Node ports the config gives to VIPs that keep or take them; a deleted VIP holding one goes first.
  const taken = new Set(plan.flatMap((o) => ((o.op === 'addVip' || o.op === 'updateVip') && o.node_port ? [`${o.vip.protocol}/${o.node_port}`] : [])));
  const first = dels.filter((d) => {
    const running = control.vips.lookup(d.vip.prefix, d.vip.protocol, d.vip.port);
    return running?.nodePort !== undefined && taken.has(`${d.vip.protocol}/${running.nodePort}`) && !wanted.has(vipRefKey(d.vip));
  });
  const rest = plan.filter((o) => o.op !== 'delVip');
  const lastVipOp = rest.reduce((i, o, j) => (['attach', 'setRedirect'].includes(o.op) ? i : j), -1);
  const late = dels.filter((d) => !first.includes(d));
  return [...first, ...rest.slice(0, lastVipOp + 1), ...late, ...rest.slice(lastVipOp + 1)];
}

/** Whether `next` adds a backend to the same VIP with the same weight and marks as `op`. */
function sameBackendGroup(op: Extract<PlanOp, { op: 'addBackend' | 'setWeight' }>, next: PlanOp): boolean {
  return (
    (next.op === 'addBackend' || next.op === 'setWeight') &&
    (next.vip === op.vip || (next.vip.prefix === op.vip.prefix && next.vip.protocol === op.vip.protocol && next.vip.port === op.vip.port)) &&
    next.weight === op.weight && Boolean(next.local) === Boolean(op.local) && Boolean(next.terminating) === Boolean(op.terminating)
  );
}

/** The Maglev tables the plan's VIPs will publish, as far as the config tells. */
function expectedTables(plan: PlanOp[], desired: KpConfig): PrefetchJob[] {
  const touched = new Set<string>();
  for (const op of plan) if ('vip' in op) touched.add(maglevTableTag(op.vip, false));
  return configTables(desired.vips, (tag) => touched.has(tag));
}

function execute(control: Control, plan: PlanOp[], flushUdp = false): void {
  // A large batch builds its tables on two threads: the helper starts now, while the maps are written.
  if (plan.length >= PARALLEL_MIN_JOBS) prepareMaglevHelper();
  // control.vips is read at every use: a flow-table resize (setConf) reloads the data plane.
  // A VIP's ops share one ref object (diffConfig): the last one's handle serves the next ops.
  let lastRef: VipRef | undefined;
  let lastHandle: VipHandle | undefined;
  const vipOf = (v: VipRef) => {
    if (v === lastRef && lastHandle) return lastHandle;
    const found = control.vips.handle(v.prefix, v.protocol, v.port);
    if (!found) throw new KpError('KP_ERR_STATE', `vip ${v.prefix} ${v.protocol} port ${v.port} vanished during apply`);
    [lastRef, lastHandle] = [v, found];
    return found;
  };
  // Marked in the maps until the tables are out: a crash in between is found by the next apply.
  control.setTablesPending(true);
  injectAt('apply.after-writes-begin');
  try {
    for (let i = 0; i < plan.length; i++) {
      const op = plan[i];
      switch (op.op) {
        case 'detach':
          control.detach([op.name]);
          break;
        case 'setConf':
          control.setConf({
            buckets: op.changed.includes('buckets') ? op.buckets : undefined,
            timeouts: op.timeouts,
            hashSeed: op.changed.includes('hash_seed') ? op.hash_seed : undefined,
          });
          if (op.changed.includes('nodeport_range') || op.changed.includes('nodeport_addresses')) {
            control.setNodePorts({ range: op.nodeport_range, addresses: op.nodeport_addresses, vipsChecked: true });
          }
          if (['masquerade_address', 'masquerade_address6', 'masquerade_ports', 'nat46_prefix'].some((c) => op.changed.includes(c as (typeof op.changed)[number]))) {
            control.setMasq({
              nat46Prefix: op.changed.includes('nat46_prefix') ? op.nat46_prefix : undefined,
              address: op.changed.includes('masquerade_address') ? op.masquerade_address : undefined,
              address6: op.changed.includes('masquerade_address6') ? op.masquerade_address6 : undefined,
              ports: op.changed.includes('masquerade_ports') ? op.masquerade_ports : undefined,
            });
          }
          break;
        case 'delVip':
          control.vips.del(vipOf(op.vip));
          lastRef = undefined;
          break;
        case 'addVip':
        case 'updateVip':
          lastRef = op.vip;
          lastHandle = undefined;
          lastHandle = { id: control.vips.put({
            prefix: op.vip.prefix,
            protocol: op.vip.protocol,
            port: op.vip.port,
            targetPort: op.target_port,
            newLen: op.new_len,
            nodePort: op.node_port,
            type: op.type,
            sourceRanges: op.source_ranges,
            externalTrafficPolicy: op.external_traffic_policy ?? 'cluster',
            internalTrafficPolicy: op.internal_traffic_policy ?? 'cluster',
            sessionAffinityTimeout: op.session_affinity_timeout ?? 0,
            ...(op.encap ? { encap: op.encap } : {}),
          }, { defer: true }) };
          break;
        case 'addBackend':
        case 'setWeight': {
          // The VIP's next backends with the same weight and marks go in one call (a full sync adds 80k).
          const addrs = [op.address];
          while (i + 1 < plan.length && sameBackendGroup(op, plan[i + 1])) addrs.push((plan[++i] as typeof op).address);
          control.vips.putBackends(vipOf(op.vip), addrs, op.weight, { defer: true, local: op.local, terminating: op.terminating });
          break;
        }
        case 'delBackend':
          control.vips.delBackends(vipOf(op.vip), [op.address], { flush: flushUdp && op.vip.protocol === 'udp', defer: true });
          break;
        case 'attach':
          // Tables first: an interface starts taking traffic only once the maps hold the config.
          control.vips.publishPending();
          control.attach([op.name], { mode: op.mode, redirect: op.redirect });
          break;
        case 'setRedirect':
          control.setRedirect(op.name, op.redirect);
          break;
      }
    }
  } finally {
    // Every changed VIP's table in one batch, also when an operation failed (the rollback diffs
    // against what the maps hold).
    injectAt('apply.before-publish');
    control.vips.publishPending();
    control.setTablesPending(false);
  }
}

/** The operations that turn `running` into `desired`; attachments only when the config manages them. */
export function planConfig(desired: KpConfig, running: RunningState, manageInterfaces = false): PlanOp[] {
  const plan = diffConfig(desired, running);
  return manageInterfaces ? plan : plan.filter((op) => !['attach', 'detach', 'setRedirect'].includes(op.op));
}

/** What a data plane that is not loaded yet holds: nothing, with the default conf. */
export const EMPTY_STATE: RunningState = {
  conf: { buckets: KP_CONFIG_DEFAULTS.buckets, timeouts: { ...DEFAULT_TIMEOUTS }, nodeport_range: [KP_NODEPORT_MIN, KP_NODEPORT_MAX], nodeport_addresses: [], masquerade_ports: [KP_MASQ_PORT_MIN, KP_MASQ_PORT_MAX] },
  interfaces: [],
  vips: [],
};

export function applyConfig(control: Control, desired: KpConfig, o: ApplyOptions): ApplyResult {
  try {
    return applyPlanned(control, desired, o);
  } finally {
    endMaglevPrefetch(); // tables built ahead are for this apply only (also when it has nothing to do)
  }
}

function applyPlanned(control: Control, desired: KpConfig, o: ApplyOptions): ApplyResult {
  // A writer that crashed between its map writes and their tables left tables that no diff sees.
  if (!o.dryRun && control.tablesPending()) {
    const n = control.vips.republishAll();
    const orphans = control.vips.freeOrphans();
    control.setTablesPending(false);
    control.warn?.(`an earlier apply ended before it published its Maglev tables: all ${n} VIPs' tables published again${orphans ? `, ${orphans} backend slots of a VIP it had not made freed` : ''}`);
  }
  const only = o.onlyVips;
  const before = runningState(control, desired, only);
  const wanted = only ? new Set(only.map(vipRefKey)) : undefined;
  // The prefix first: a set lookup on a string it already hashed, where a key would be built per VIP.
  const wantedPrefixes = new Set(only?.map((r) => r.prefix));
  const vips = o.onlyDesired ?? (wanted ? desired.vips.filter((v) => wantedPrefixes.has(v.prefix) && wanted.has(vipRefKey(v))) : undefined);
  const plan = planConfig(vips ? { ...desired, vips } : desired, before, o.manageInterfaces);
  if (!plan.length) return result(plan);
  // A dry run makes every check a real run makes before it changes anything.
  checkInterfaces(plan);
  checkCapacity(control, plan, desired, o.counts);
  if (o.dryRun) return result(plan);
  // Built ahead on the helper thread while the maps are written (unless a preload already did).
  if (plan.length >= PARALLEL_MIN_JOBS && !hasMaglevPrefetch()) prefetchMaglevTables(expectedTables(plan, desired));
  try {
    execute(control, orderDeletes(control, plan, desired), o.flushUdp);
  } catch (e) {
    const reason = (e as Error).message;
    try {
      execute(control, planConfig(asConfig(before), runningState(control, undefined, only), o.manageInterfaces));
      control.vips.collectDrained(control.conf().timeouts); // backends the failed apply added, unless used
    } catch (e2) {
      throw new KpError('KP_ERR_STATE', `apply failed (${reason}) and rolling back failed too (${(e2 as Error).message}): check kpbpf show vips`);
    }
    throw new KpError(e instanceof KpError ? e.code : 'KP_ERR_STATE', `apply failed, running state restored: ${reason}`);
  }
  if (o.collectDrained !== false) control.vips.collectDrained(control.conf().timeouts);
  return result(plan);
}
