// The running data plane as the CLI and `apply` see it: open or load it, configure it, read it back.
import { existsSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KpError } from '../errors.js';
import {
  attachXdp,
  detachLink,
  ensureBpffs,
  linkPath,
  listLinks,
  adoptPinnedProgram,
  createMaps,
  loadDataplane,
  openPinned,
  pinLink,
  pinRoot,
  PROG_PIN,
  type Dataplane,
  type XdpMode,
} from '../loader/index.js';
import { closeFd, ifIndexToName, ifNameToIndex, lb } from '../sys/libbpf.js';
import { applyChanges, describeChange, IFSYSCTL_SUBDIR, neededChanges, recordedIfindexes, restoreChanges, type SysctlChange } from '../loader/ifsysctl.js';
import { mapInfo } from '../sys/info.js';
import { attachCgroup, cgroupId, CGLINKS_SUBDIR, detachCgroups, listCgroups, SOCK_HOOKS, sockProgPin, type CgroupAttachment } from '../loader/cgroup.js';
import { KP_INTERNAL_MAPS, KP_MAP_NAMES, KP_RETIRED_MAPS } from '../maps/kpmaps.js';
import { flushNextHops } from './nexthops.js';
import { inPrefixes, nodeAddressesOfHost } from './nodeaddrs.js';
import { parsePrefix } from '../maps/addr.js';
import { KP_NODEPORT_MAX, KP_NODEPORT_MIN } from '../config/types.js';
import type { Config, Masq, Settings } from '../maps/codecs.js';
import { KP_MASQ_PORT_MAX, KP_MASQ_PORT_MIN, NAT46_PREFIX_DEFAULT, parseMasqPorts, parseNat46Prefix } from '../config/masq.js';
import { localPortRange } from '../sys/host.js';
import { VipTable, type RemovedBackend } from './vips.js';
import { lockWriter, type WriterLock } from './lock.js';
import { readStats } from './stats.js';
import { readFlows } from './connections.js';
import type { ConfView, DetachedView, FlowView, LinkView, StatsView, VipSpec, VipView, BackendView } from './types.js';
import type { KpConfig } from '../config/types.js';
import { DEFAULT_TIMEOUTS, timeoutSlots, timeoutsFromSlots, type CtTimeouts } from '../config/timeouts.js';
import { MASQ_NAT46, MASQ_V4, MASQ_V6 } from '../maps/codecs.js';
import { applyConfig, type ApplyOptions, type ApplyResult } from './apply.js';
import { CT_OLD_PIN, recoverResize, resizeTable } from './resize.js';

export const DEFAULT_BUCKETS = 131072;
/** kp_config flags (bpf/kp_shared.h) */
export const KP_CONF_F_TABLES_PENDING = 0x2;

export interface OpenOptions {
  bpffs?: string;
  /** load and pin the data plane when nothing is pinned yet */
  load: boolean;
  buckets?: number;
  objectPath?: string;
  /** take the writer lock (every command that changes the data plane) */
  write?: boolean;
  /** the writer lock, taken already by the caller (it is released with this Control) */
  lock?: WriterLock;
  /** hold the lock as this long-running owner (the daemon): other writers are refused at once */
  owner?: string;
  /**
   * Load this kpbpf's program over pinned maps of the same layout (an upgrade or a restart takes
   * over): compatible maps are kept, with their connections, missing ones created, and the links
   * switch to the new program atomically.
   */
  upgrade?: boolean;
  /** when already loaded with another flow table size, reload to `buckets` (default true) */
  reload?: boolean;
  /**
   * The maps may be pinned without the program yet (Control.createMaps; another thread is loading
   * it): open them, with no program until adoptProgram. Nothing is loaded or reloaded.
   */
  programPending?: boolean;
}

export type AttachedView = LinkView & { mode: string; already: boolean; set: string[]; warning?: string };

export class Control {
  readonly vips: VipTable;
  /** where a warning goes (an attach that could not set what an interface needs); default none */
  warn?: (message: string) => void;

  private constructor(
    public dp: Dataplane,
    readonly pinDir: string,
  ) {
    this.vips = new VipTable(dp, () => this.nodeAddresses(), () => this.nodePortRange());
  }

  /** Whether a data plane is pinned under this bpffs (nothing is mounted or loaded to find out). */
  static isLoaded(bpffs?: string): boolean {
    return existsSync(join(pinRoot({ bpffs }), PROG_PIN));
  }

  static open(o: OpenOptions): Control {
    const pinDir = pinRoot({ bpffs: o.bpffs });
    ensureBpffs(pinDir.slice(0, pinDir.lastIndexOf('/')) || '/');
    const lock = o.lock ?? (o.write || o.owner ? lockWriter(pinDir, undefined, o.owner) : undefined);
    try {
      // A writer first finishes or undoes a resize a crash cut short (none runs: it holds the lock).
      if (lock) recoverResize(pinDir);
      const control = Control.openLocked(o, pinDir);
      control.lock = lock;
      return control;
    } catch (e) {
      lock?.release();
      throw e;
    }
  }

  /**
   * The maps created and pinned (or kept) with their first config, no program: the caller holds
   * the writer lock and loads the program next (open with upgrade). Returns the connection table's
   * buckets (a pinned table keeps its size).
   */
  static createMaps(o: { bpffs?: string; buckets?: number; objectPath?: string }): number {
    const pinDir = pinRoot({ bpffs: o.bpffs });
    recoverResize(pinDir); // (a resize a crash cut short: its table, not an empty one)
    const buckets = pinnedBuckets(pinDir) ?? o.buckets ?? DEFAULT_BUCKETS;
    createMaps({ pinDir, buckets, objectPath: o.objectPath ?? process.env.KPBPF_OBJECT });
    const control = new Control(openPinned(pinDir, { programPending: true }), pinDir);
    try {
      control.initConfig();
    } finally {
      control.close();
    }
    return buckets;
  }

  /** Whether an apply began writing VIPs and backends and ended before it published their tables. */
  tablesPending(): boolean {
    return (this.rawConfig().flags & KP_CONF_F_TABLES_PENDING) !== 0;
  }

  setTablesPending(on: boolean): void {
    const c = this.rawConfig();
    const flags = on ? c.flags | KP_CONF_F_TABLES_PENDING : c.flags & ~KP_CONF_F_TABLES_PENDING;
    if (flags !== c.flags) this.dp.maps.config.update(0, { ...c, flags });
  }

  /** The program pinned since this Control opened (another thread loaded it): attachments use it. */
  adoptProgram(): void {
    adoptPinnedProgram(this.dp);
  }

  private static openLocked(o: OpenOptions, pinDir: string): Control {
    if (o.programPending) return new Control(openPinned(pinDir, { programPending: true }), pinDir);
    // Pins an older kpbpf made (it used maps this one replaced): a command that may write takes the
    // data plane over with this kpbpf's program, as a daemon's restart does, keeping connections.
    const older = KP_RETIRED_MAPS.some((n) => existsSync(join(pinDir, n)));
    if (existsSync(join(pinDir, PROG_PIN)) && (o.upgrade || (older && o.load && (o.write || o.owner || o.lock)))) {
      const buckets = pinnedBuckets(pinDir) ?? o.buckets;
      const control = new Control(loadDataplane({ pinDir, buckets, objectPath: o.objectPath ?? process.env.KPBPF_OBJECT }), pinDir);
      control.initConfig();
      return control;
    }
    if (existsSync(join(pinDir, PROG_PIN))) {
      const control = new Control(openPinned(pinDir), pinDir);
      try {
        if (o.reload !== false && o.buckets !== undefined && o.buckets !== control.conf().buckets) control.reload({ buckets: o.buckets });
      } catch (e) {
        control.close();
        throw e;
      }
      return control;
    }
    if (!o.load) {
      throw new KpError('KP_ERR_STATE', `kpbpf is not loaded (nothing pinned in ${pinDir}): run kpbpf attach <ifname> or kpbpf apply -f FILE first`);
    }
    const dp = loadDataplane({ pinDir, buckets: o.buckets ?? DEFAULT_BUCKETS, objectPath: o.objectPath ?? process.env.KPBPF_OBJECT });
    const control = new Control(dp, pinDir);
    control.initConfig();
    return control;
  }

  /** First load: default timeouts and a random hash seed (kept in the pinned map from then on). */
  private initConfig(): void {
    const cur = this.dp.maps.config.lookup(0);
    if (cur && cur.timeoutS.some((t) => t !== 0)) return; // maps were reused from pins
    // Masquerade from the first node address of each family, as kube-proxy's MASQUERADE picks an interface's.
    const addrs = this.nodeAddresses();
    this.dp.maps.masq.update(MASQ_V4, { addr: addrs.find((a) => !a.includes(':')) ?? '', portMin: KP_MASQ_PORT_MIN, portMax: KP_MASQ_PORT_MAX });
    this.dp.maps.masq.update(MASQ_V6, { addr: addrs.find((a) => a.includes(':')) ?? '', portMin: 0, portMax: 0 });
    this.dp.maps.config.update(0, {
      timeoutS: timeoutSlots(DEFAULT_TIMEOUTS),
      hashSeed: randomBytes(4).readUInt32LE(0),
      nVipPrefixes: 0,
      flags: 0,
    });
  }

  private rawConfig(): Config {
    return this.dp.maps.config.lookup(0) ?? { timeoutS: [], hashSeed: 0, nVipPrefixes: 0, flags: 0 };
  }

  conf(): ConfView {
    const c = this.rawConfig();
    const m = this.masq(MASQ_V4);
    const m6 = this.masq(MASQ_V6);
    const timeouts = timeoutsFromSlots(c.timeoutS);
    const [min, max] = this.nodePortRange();
    return {
      buckets: this.dp.maps.ct.info.maxEntries / 2,
      timeout: timeouts.udp,
      timeouts,
      hashSeed: c.hashSeed,
      nodePortRange: `${min}-${max}`,
      nodePortAddresses: this.settings().nodePortAddresses,
      masqueradeAddress: m.addr || 'none',
      masqueradeAddress6: m6.addr || 'none',
      masqueradePorts: `${m.portMin || KP_MASQ_PORT_MIN}-${m.portMax || KP_MASQ_PORT_MAX}`,
      nat46Prefix: this.masq(MASQ_NAT46).addr ? `${this.masq(MASQ_NAT46).addr}/96` : NAT46_PREFIX_DEFAULT,
    };
  }

  private masq(key: number): Masq {
    return this.dp.maps.masq.lookup(key) ?? { addr: '', portMin: 0, portMax: 0 };
  }

  /**
   * Masquerade addresses, IPv4 and IPv6 ('none': LoadBalancer/external IP and hairpin connections of
   * that family keep the client's address), and/or the port range (both families). New connections
   * only: live ones keep the source they were given.
   */
  setMasq(o: { address?: string; address6?: string; ports?: [number, number]; nat46Prefix?: string }): void {
    const next = { ...this.masq(MASQ_V4) };
    if (o.address !== undefined) next.addr = o.address === 'none' ? '' : o.address;
    if (o.ports) {
      const r = parseMasqPorts(o.ports.join('-'), this.nodePortRange(), localPortRange());
      if (!Array.isArray(r)) throw new KpError('KP_ERR_ARG', `masquerade_ports: ${r.error}`);
      [next.portMin, next.portMax] = r;
    }
    if (o.address6 !== undefined) this.dp.maps.masq.update(MASQ_V6, { addr: o.address6 === 'none' ? '' : o.address6, portMin: 0, portMax: 0 });
    if (o.nat46Prefix !== undefined) {
      const p = parseNat46Prefix(o.nat46Prefix);
      if (typeof p !== 'string') throw new KpError('KP_ERR_ARG', `nat46_prefix: ${p.error}`);
      // The default is stored as none (all zero), which the data path reads as 64:ff9b::/96.
      this.dp.maps.masq.update(MASQ_NAT46, { addr: p === NAT46_PREFIX_DEFAULT ? '' : p.split('/')[0], portMin: 0, portMax: 0 });
    }
    this.dp.maps.masq.update(MASQ_V4, next);
  }

  private settings(): Settings {
    return this.dp.maps.settings.lookup(0) ?? { nodePortMin: 0, nodePortMax: 0, nodePortAddresses: [] };
  }

  /** The node port range (kube-apiserver's --service-node-port-range; 30000-32767 unless set). */
  nodePortRange(): [number, number] {
    const s = this.settings();
    return s.nodePortMin ? [s.nodePortMin, s.nodePortMax] : [KP_NODEPORT_MIN, KP_NODEPORT_MAX];
  }

  /** The node addresses node ports are served on: the node's IPv4 and global IPv6 addresses within
   * the set prefixes; with no prefixes, the Node object's addresses when a source gave them, else
   * every address of the host. */
  nodeAddresses(): string[] {
    const prefixes = this.settings().nodePortAddresses;
    if (!prefixes.length && this.nodeObjectAddresses) return this.nodeObjectAddresses;
    const all = nodeAddressesOfHost();
    return prefixes.length ? all.filter((a) => inPrefixes(a, prefixes)) : all;
  }

  private nodeObjectAddresses?: string[];

  /**
   * The node's addresses as the Kubernetes Node object lists them (undefined: none given). With no
   * nodeport_addresses prefixes, node ports are served on these; a change moves every node port.
   */
  useNodeObjectAddresses(addrs: string[] | undefined): void {
    const before = this.nodeAddresses().join();
    this.nodeObjectAddresses = addrs && [...new Set(addrs)].sort();
    if (this.nodeAddresses().join() !== before) this.vips.resyncNodePorts();
  }

  /**
   * Node port range and/or the prefixes node ports are served on (kube-proxy's --nodeport-addresses;
   * [] = every address). A new range is refused while a VIP's node port is outside it, unless
   * `vipsChecked` (apply has validated the whole desired config). New prefixes take effect at once.
   */
  setNodePorts(o: { range?: [number, number]; addresses?: string[]; vipsChecked?: boolean }): void {
    const cur = this.settings();
    const next: Settings = { ...cur };
    if (o.range) {
      const [min, max] = o.range;
      if (!o.vipsChecked) {
        const out = this.listVips().find((v) => v.nodePort && (v.nodePort < min || v.nodePort > max));
        if (out) throw new KpError('KP_ERR_STATE', `nodeport_range ${min}-${max}: vip ${out.prefix} ${out.protocol} port ${out.port} has node port ${out.nodePort}, outside it`);
      }
      const isDefault = min === KP_NODEPORT_MIN && max === KP_NODEPORT_MAX;
      next.nodePortMin = isDefault ? 0 : min;
      next.nodePortMax = isDefault ? 0 : max;
    }
    if (o.addresses) next.nodePortAddresses = [...new Set(o.addresses.map((a) => parsePrefix(a).text))].sort();
    this.dp.maps.settings.update(0, next);
    if (o.addresses && next.nodePortAddresses.join() !== cur.nodePortAddresses.join()) this.vips.resyncNodePorts();
  }

  /**
   * New table size, timeouts (only those given change) and/or flow-hash seed. A new seed changes the
   * pick of new connections only: live ones keep their records, hence their backends.
   */
  setConf(o: { buckets?: number; timeouts?: Partial<CtTimeouts>; hashSeed?: number }): void {
    if (o.buckets !== undefined && o.buckets !== this.conf().buckets) this.reload({ buckets: o.buckets });
    const raw = this.rawConfig();
    const next = { ...raw };
    if (o.timeouts && Object.keys(o.timeouts).length) next.timeoutS = timeoutSlots({ ...timeoutsFromSlots(raw.timeoutS), ...o.timeouts });
    if (o.hashSeed !== undefined) next.hashSeed = o.hashSeed >>> 0;
    if (next.timeoutS !== raw.timeoutS || next.hashSeed !== raw.hashSeed) this.dp.maps.config.update(0, next);
  }

  /**
   * Load the program again with a connection table of another size, keeping every other pinned map
   * (VIPs, backends, counters), copy the connections over, and switch the attached links to it with
   * bpf_link_update: traffic keeps flowing and connections keep their backends. The switch comes
   * after the copy: a live connection's packet never meets the new, empty table (one that did was
   * picked up loosely, on another backend if its own was draining, and reset). A connection that
   * starts between the copy and the switch is picked up loosely on the same backend.
   */
  reload(o: { buckets: number }): void {
    const dp = resizeTable(this.pinDir, this.dp, o.buckets);
    this.dp.close();
    this.dp = dp;
    (this as { vips: VipTable }).vips = new VipTable(this.dp, () => this.nodeAddresses(), () => this.nodePortRange());
  }

  // --- VIPs and backends (src/dataplane/vips.ts does the work) ---
  listVips(o: { slots?: boolean } = {}): VipView[] {
    return this.vips.list(o);
  }
  findVip(q: { prefix: string; protocol?: 'tcp' | 'udp'; port?: number }): VipView {
    return this.vips.find(q);
  }
  addVip(spec: VipSpec): VipView {
    return this.vips.add(spec);
  }
  delVip(v: VipView): void {
    this.vips.del(v);
  }
  addBackends(v: VipView, addrs: string[], weight: number, o: { local?: boolean; terminating?: boolean } = {}): BackendView[] {
    return this.vips.addBackends(v, addrs, weight, o);
  }
  delBackends(v: VipView, addrs: string[], o: { flush: boolean }): RemovedBackend[] {
    const out = this.vips.delBackends(v, addrs, o);
    this.vips.collectDrained(this.conf().timeouts);
    return out;
  }

  // --- interfaces ---
  links(): LinkView[] {
    return listLinks(this.pinDir).map((l) => ({
      ifname: l.ifname ?? `(gone, ifindex ${l.ifindex})`,
      ifindex: l.ifindex,
      redirect: this.dp.maps.txPorts.lookup(l.ifindex) !== undefined,
    }));
  }

  /**
   * All or nothing: every name is checked first, and a failure detaches what this call attached. A
   * new attachment also sets what the interface needs for the packets XDP_PASS hands the kernel with
   * a node address as their source (src/loader/ifsysctl.ts), and says what it set in `set`; the
   * detach puts it back.
   */
  attach(ifnames: string[], o: { mode: XdpMode; redirect: boolean }): AttachedView[] {
    if (this.dp.progFd < 0) throw new KpError('KP_ERR_STATE', 'attach: the program is still being loaded (the maps were opened before it)');
    const targets = ifnames.map((name) => {
      const ifindex = ifNameToIndex(name);
      if (!ifindex) throw new KpError('KP_ERR_NET', `attach: interface '${name}' not found`);
      return { name, ifindex };
    });
    const done: AttachedView[] = [];
    const made: { path: string; ifindex: number; name: string }[] = [];
    try {
      for (const t of targets) {
        const path = linkPath(this.pinDir, t.ifindex);
        let mode = 'attached before';
        let changes: SysctlChange[] = [];
        let warning: string | undefined;
        const already = existsSync(path);
        if (!already) {
          const link = attachXdp(this.dp.progFd, t.name, o.mode);
          if (link.mode === 'generic' && o.redirect) {
            closeFd(link.linkFd); // the only reference: the program comes off the interface
            throw new KpError(
              'KP_ERR_STATE',
              `attach ${t.name}: it got generic (skb) XDP, and --redirect is refused there: a redirected frame would keep its CHECKSUM_PARTIAL mark with its checksum already finished, and a NIC that offloads checksums would compute it again; attach it without --redirect (the kernel forwards), or where native XDP works`,
            );
          }
          try {
            pinLink(link.linkFd, path);
            made.push({ path, ifindex: t.ifindex, name: t.name });
            changes = neededChanges(t.name);
            const unset = applyChanges(this.pinDir, t.ifindex, t.name, link.linkFd, changes);
            if (unset) {
              warning = `could not set ${changes.map((c) => `${c.key}=${c.to}`).join(', ')}: ${unset}; the kernel drops what XDP passes it with a node address as source (node ports, masquerade, NAT64) unless the way out is a --redirect target`;
              changes = [];
              this.warn?.(`${t.name}: ${warning}`);
            }
          } finally {
            closeFd(link.linkFd);
          }
          mode = link.mode;
        }
        if (o.redirect) this.dp.maps.txPorts.update(t.ifindex, { ifindex: t.ifindex, prog: 0 });
        done.push({ ifname: t.name, ifindex: t.ifindex, mode, redirect: o.redirect, already, set: changes.map(describeChange), ...(warning ? { warning } : {}) });
      }
    } catch (e) {
      for (const m of made) {
        detachLink(m.path);
        restoreChanges(this.pinDir, m.ifindex, m.name);
      }
      throw e;
    } finally {
      this.flushNextHops();
    }
    return done;
  }

  /** Drop the data plane's cached FIB results, which record whether their egress may be redirected to. */
  private flushNextHops(): void {
    flushNextHops(this.dp.maps);
  }

  setRedirect(ifname: string, redirect: boolean): void {
    const l = listLinks(this.pinDir).find((x) => x.ifname === ifname);
    if (!l) throw new KpError('KP_ERR_STATE', `kpbpf is not attached to '${ifname}'`);
    if (redirect) this.dp.maps.txPorts.update(l.ifindex, { ifindex: l.ifindex, prog: 0 });
    else this.dp.maps.txPorts.delete(l.ifindex);
    this.flushNextHops();
  }

  detach(ifnames?: string[]): DetachedView[] {
    const links = listLinks(this.pinDir);
    const chosen = ifnames
      ? ifnames.map((n) => {
          const l = links.find((x) => x.ifname === n);
          if (!l) throw new KpError('KP_ERR_STATE', `detach: kpbpf is not attached to '${n}'`);
          return l;
        })
      : links;
    const out: DetachedView[] = [];
    for (const l of chosen) {
      detachLink(l.path);
      this.dp.maps.txPorts.delete(l.ifindex);
      const restored = restoreChanges(this.pinDir, l.ifindex, l.ifname);
      out.push({ ifname: l.ifname ?? `ifindex ${l.ifindex}`, restored: restored.map(describeChange) });
    }
    this.flushNextHops();
    return out;
  }

  // --- the node's own sockets (cgroup socket hooks) ---
  /** Attach the socket hooks to a cgroup v2 directory: the node's sockets in it reach services too. */
  attachCgroup(path: string): CgroupAttachment & { path: string; already: boolean } {
    if (!this.dp.sockProgs) {
      throw new KpError('KP_ERR_STATE', 'this data plane was loaded without the socket hooks (an older kp.bpf.o): run kpbpf detach --purge and attach again');
    }
    const r = attachCgroup(this.pinDir, this.dp.sockProgs, path);
    return { path, cgroupId: r.cgroupId, hooks: SOCK_HOOKS.map((h) => h.hook), already: r.already };
  }

  /** Detach the socket hooks from the cgroup at path, or from every cgroup; the ids detached. */
  detachCgroups(path?: string): string[] {
    return detachCgroups(this.pinDir, path ? { path } : undefined);
  }

  /** Cgroups the socket hooks are attached to; `path` names the one that is the given directory. */
  cgroups(known?: string): (CgroupAttachment & { path?: string })[] {
    let knownId: string | undefined;
    try {
      knownId = known ? String(cgroupId(known)) : undefined;
    } catch {
      knownId = undefined;
    }
    return listCgroups(this.pinDir).map((c) => ({ ...c, ...(c.cgroupId === knownId ? { path: known } : {}) }));
  }

  /** Remove every pin (after detach): the maps go away with the last reference. */
  purge(): void {
    this.close();
    for (const l of listLinks(this.pinDir)) detachLink(l.path);
    // Every recorded setting put back (a crash may have left one whose link is gone).
    for (const ifindex of recordedIfindexes(this.pinDir)) restoreChanges(this.pinDir, ifindex, ifIndexToName(ifindex));
    detachCgroups(this.pinDir);
    const progPins = [PROG_PIN, ...SOCK_HOOKS.map((h) => sockProgPin(h.hook))].flatMap((p) => [p, `${p}_new`]); // (_new: a load's, renamed over it)
    for (const name of [...KP_MAP_NAMES, ...KP_INTERNAL_MAPS, ...KP_RETIRED_MAPS, CT_OLD_PIN, ...progPins]) rmSync(join(this.pinDir, name), { force: true });
    for (const sub of ['links', CGLINKS_SUBDIR, IFSYSCTL_SUBDIR]) {
      const dir = join(this.pinDir, sub);
      if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
    }
    if (existsSync(this.pinDir) && readdirSync(this.pinDir).length === 0) rmdirSync(this.pinDir);
  }

  // --- reading ---
  stats(): StatsView {
    return readStats(this.dp, this.vips.list());
  }

  flows(o: { limit: number }): FlowView[] {
    return readFlows(this.dp, this.vips.list(), this.conf().timeouts, o.limit);
  }

  apply(config: KpConfig, o: ApplyOptions): ApplyResult {
    return applyConfig(this, config, o);
  }

  private closed = false;
  private lock?: WriterLock;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.dp.close();
    } finally {
      this.lock?.release();
    }
  }
}

/** The pinned connection table's buckets (a pinned table keeps its size), if one is pinned. */
function pinnedBuckets(pinDir: string): number | undefined {
  const ct = join(pinDir, 'kp_ct');
  return existsSync(ct) ? pinnedMaxEntries(ct) / 2 : undefined;
}

/** A pinned map's max_entries. */
function pinnedMaxEntries(path: string): number {
  const fd = lb.bpf_obj_get(path);
  if (fd < 0) throw new KpError('KP_ERR_STATE', `cannot open ${path}`);
  try {
    return mapInfo(fd).maxEntries;
  } finally {
    closeFd(fd);
  }
}

