// The live data plane: program fd plus typed maps, from a fresh load or from pins.
import { existsSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KpError } from '../errors.js';
import { injectAt } from '../inject.js';
import { backendStats as backendStatsCodec, LAYOUT_VERSION, u32, vipStats as vipStatsCodec, type Codec } from '../maps/codecs.js';
import { BpfMap, PerCpuMap } from '../maps/map.js';
import { KP_CPU_SLICED_MAPS, KP_MAP_NAMES, KP_RETIRED_MAPS, KP_RETIRED_SUCCESSOR, kpMapsFromFds, type KpMapName, type KpMaps } from '../maps/kpmaps.js';
import { check, closeFd, dupFd, lb, numPossibleCpus } from '../sys/libbpf.js';
import { mapInfo } from '../sys/info.js';
import { MaglevStore } from './maglevstore.js';
import type { MaglevTable } from '../maglev/prefetch.js';
import { BackendSlots } from './backendslots.js';
import { BpfObject } from './object.js';
import { preparePinDir } from './pins.js';
import { updateLinks } from './xdp.js';
import { SOCK_HOOKS, sockProgPin, updateCgroupLinks, type SockProgs } from './cgroup.js';

/** The XDP program of kp.bpf.o (the object also holds the socket hooks' programs). */
export const XDP_PROG = 'kp_xdp';

/** The IPv6 program, which kp_xdp tail-calls through kp_progs (KP_PROG_IPV6). */
export const XDP6_PROG = 'kp_xdp6';
const PROGS_MAP = 'kp_progs';
const KP_PROG_IPV6 = 0;

export const PROG_PIN = 'prog';
/** The connection table; `buckets` connections take two entries each (forward and reply). */
export const CT_MAP = 'kp_ct';

/** <repo>/build/kp.bpf.o, found relative to this module (src/loader or dist/loader). */
export const DEFAULT_OBJECT = resolve(dirname(fileURLToPath(import.meta.url)), '../../build/kp.bpf.o');

export interface Dataplane {
  progFd: number;
  /** the socket hooks' programs (bpf/kp_sock.h), when the object has them */
  sockProgs?: SockProgs;
  pinDir?: string;
  maps: KpMaps;
  /** Publish a VIP's Maglev table (as setMaglevTables). */
  setMaglevTable(vipId: number, slots: Uint32Array | number[], local?: boolean): void;
  /**
   * Publish many tables (with `local`: the tables of local backends only) into the shared store
   * (src/loader/maglevstore.ts); each VIP's table switches whole, with one atomic store.
   */
  setMaglevTables(tables: ReadonlyArray<readonly [number, MaglevTable]>, local?: boolean): void;
  clearMaglevTable(vipId: number, local?: boolean): void;
  hasMaglevTable(vipId: number, local?: boolean): boolean;
  /** kp_backends through its mapping */
  backendSlots: BackendSlots;
  getMaglevTable(vipId: number, local?: boolean): Uint32Array | undefined;
  /**
   * Point kp_progs at this load's tail-called programs (the IPv6 program). loadDataplane does it
   * itself unless keepLinks; a reload calls it when the new program's maps are ready.
   */
  linkTailCalls(): void;
  /** what a load over an older kpbpf's pins carried over from maps this one replaced */
  migrated?: string[];
  close(): void;
}

export interface LoadOptions {
  objectPath?: string;
  /** connections kp_ct holds (max_entries = 2 x buckets) */
  buckets?: number;
  /** pin maps as <pinDir>/<name> and the program as <pinDir>/prog; undefined = no pins */
  pinDir?: string;
  /** program to use; default the object's first */
  progName?: string;
  /**
   * Leave attached interfaces on the program they run (default: switch them to the new one). A
   * reload with a new connection table copies the connections first and switches after, so that no
   * packet of a live connection meets the empty table.
   */
  keepLinks?: boolean;
}

const LAYOUT_MAP = 'kp_layout';

/** The layout version pinned in pinDir: undefined when nothing is pinned, 1 for pins made before
 * versions were kept (they lack kp_layout). */
export function pinnedLayout(pinDir: string): number | undefined {
  const p = join(pinDir, LAYOUT_MAP);
  if (!existsSync(p)) return KP_MAP_NAMES.some((n) => n !== LAYOUT_MAP && existsSync(join(pinDir, n))) ? 1 : undefined;
  const fd = check('bpf_obj_get', lb.bpf_obj_get(p), p);
  const m = new BpfMap(fd, u32, u32, LAYOUT_MAP);
  try {
    return m.lookup(0) || 1;
  } finally {
    m.close();
  }
}

/** Pins of another layout mean something else: refused, naming both versions. */
export function checkLayout(pinDir: string): void {
  const v = pinnedLayout(pinDir);
  if (v !== undefined && v !== LAYOUT_VERSION) {
    throw new KpError(
      'KP_ERR_STATE',
      `the data plane pinned in ${pinDir} has map layout version ${v}, this kpbpf has ${LAYOUT_VERSION}: its maps' fields mean other things; ` +
        'use the kpbpf that made them, or run kpbpf detach --purge (connections are lost) and load again',
    );
  }
}

/** How often a load the verifier gave up on with EAGAIN is tried again. */
const LOAD_TRIES = 5;

/**
 * The object opened, sized, bound to the pinned maps and loaded. The verifier returns EAGAIN when a
 * signal arrives while it works (a profiler's SIGPROF, a SIGCHLD, a SIGHUP to the daemon), which
 * says nothing about the program: the load is made again from a fresh open, as libbpf cannot load
 * an object twice.
 */
function openAndLoad(o: LoadOptions, mapsOnly = false): { obj: BpfObject; names: string[]; fresh: string[] } {
  for (let attempt = 1; ; attempt++) {
    const obj = BpfObject.open(o.objectPath ?? DEFAULT_OBJECT);
    try {
      if (mapsOnly) obj.loadNoProgram();
      if (o.buckets !== undefined) obj.setMaxEntries(CT_MAP, 2 * o.buckets);
      for (const n of KP_CPU_SLICED_MAPS) obj.setMaxEntries(n, obj.spec(obj.map(n)).maxEntries * numPossibleCpus());
      const names = obj.maps().map((m) => m.name);
      const missing = KP_MAP_NAMES.filter((n) => !names.includes(n));
      if (missing.length > 0) throw new KpError('KP_ERR_STATE', `BPF object lacks maps: ${missing.join(', ')}`);
      const pinDir = o.pinDir;
      const fresh = pinDir ? names.filter((n) => !obj.reusePinned(n, join(pinDir, n))) : [];
      obj.load();
      return { obj, names, fresh };
    } catch (e) {
      obj.close();
      if (!(e instanceof KpError && e.errnoName === 'EAGAIN' && attempt < LOAD_TRIES)) throw e;
    }
  }
}

/**
 * The maps alone, created and pinned (those already pinned are kept), no program: a daemon writes
 * its first state into them while the verifier works on the program, which loadDataplane then
 * loads over these pins. kp_layout is pinned first, holding its version: pins left by a crash
 * halfway are taken up by the next start rather than refused as an unknown layout. Returns the
 * connection table's buckets.
 */
export function createMaps(o: LoadOptions & { pinDir: string }): number {
  preparePinDir(o.pinDir);
  checkLayout(o.pinDir);
  const { obj, fresh } = openAndLoad(o, true);
  try {
    if (fresh.includes(LAYOUT_MAP)) {
      const m = new BpfMap(dupFd(obj.mapFd(LAYOUT_MAP)), u32, u32, LAYOUT_MAP);
      try {
        m.update(0, LAYOUT_VERSION);
      } finally {
        m.close();
      }
    }
    for (const n of [...fresh].sort((a, b) => Number(b === LAYOUT_MAP) - Number(a === LAYOUT_MAP))) obj.pinMap(n, join(o.pinDir, n));
    return mapInfo(obj.mapFd(CT_MAP)).maxEntries / 2;
  } finally {
    obj.close();
  }
}

export function loadDataplane(o: LoadOptions = {}): Dataplane {
  if (o.pinDir) {
    preparePinDir(o.pinDir);
    checkLayout(o.pinDir);
  }
  const { obj, names, fresh } = openAndLoad(o);
  const fds: number[] = [];
  let tail: TailCalls | undefined;
  try {
    const pinDir = o.pinDir;
    if (pinDir) for (const n of fresh) obj.pinMap(n, join(pinDir, n));
    if (pinDir && !o.keepLinks) injectAt('load.maps-pinned');
    const progFd = dupFd(obj.progFd(o.progName ?? (obj.hasProgram(XDP_PROG) ? XDP_PROG : undefined)));
    fds.push(progFd);
    // The array keeps its entries while an fd or a pin holds it: a load without pins keeps the fd.
    tail = obj.hasProgram(XDP6_PROG) && names.includes(PROGS_MAP) ? new TailCalls(dupFd(obj.mapFd(PROGS_MAP)), [[KP_PROG_IPV6, dupFd(obj.progFd(XDP6_PROG))]]) : undefined;
    if (tail && !o.keepLinks) tail.link();
    let sockProgs: SockProgs | undefined;
    if (SOCK_HOOKS.every((h) => obj.hasProgram(h.prog))) {
      sockProgs = {} as SockProgs;
      for (const h of SOCK_HOOKS) {
        sockProgs[h.hook] = dupFd(obj.progFd(h.prog));
        fds.push(sockProgs[h.hook]);
      }
    }
    if (o.pinDir) {
      // A reload replaces the pinned program: pinned beside it, then renamed over it, so that a
      // crash leaves one or the other pinned, never none.
      const pin = (fd: number, name: string) => {
        const p = join(o.pinDir!, name);
        rmSync(`${p}_new`, { force: true });
        check('bpf_obj_pin', lb.bpf_obj_pin(fd, `${p}_new`), p);
        renameSync(`${p}_new`, p);
      };
      pin(progFd, PROG_PIN);
      if (sockProgs) for (const h of SOCK_HOOKS) pin(sockProgs[h.hook], sockProgPin(h.hook));
      if (!o.keepLinks) {
        injectAt('load.program-pinned');
        updateLinks(o.pinDir, progFd); // attached interfaces switch to the new program atomically
        if (sockProgs) updateCgroupLinks(o.pinDir, sockProgs);
        injectAt('load.switched');
      }
    }
    const mapFds = {} as Record<KpMapName, number>;
    for (const n of KP_MAP_NAMES) {
      mapFds[n] = dupFd(obj.mapFd(n));
      fds.push(mapFds[n]);
    }
    fds.length = sockProgs ? 1 + SOCK_HOOKS.length : 1; // the maps now own their fds
    const maps = kpMapsFromFds(mapFds);
    maps.layout.update(0, LAYOUT_VERSION);
    const dp = makeDataplane(progFd, maps, o.pinDir, sockProgs, tail);
    if (o.pinDir) dp.migrated = migrateRetired(o.pinDir, maps);
    return dp;
  } catch (e) {
    fds.forEach(closeFd);
    tail?.close();
    throw e;
  } finally {
    obj.close();
  }
}

/**
 * Maps an older kpbpf used in place of some of this one's: their counts copied into the maps that
 * replaced them (the interfaces run this program now; the old one held them while it ran), their
 * pins removed. What was carried over, in words.
 */
function migrateRetired(pinDir: string, maps: KpMaps): string[] {
  const out: string[] = [];
  for (const name of KP_RETIRED_MAPS) {
    const path = join(pinDir, name);
    if (!existsSync(path)) continue;
    const into = maps[KP_RETIRED_SUCCESSOR[name]];
    const old = PerCpuMap.fromPin<number, object>(path, u32, (name === 'kp_vip_stats' ? vipStatsCodec : backendStatsCodec) as Codec<object>);
    try {
      const counted: [number, object[]][] = [];
      for (const [id, perCpu] of old.entries()) {
        if (id < into.slice && perCpu.some((v) => Object.values(v).some((x) => x !== 0n))) counted.push([id, perCpu]);
      }
      (into as { restore(e: Iterable<readonly [number, readonly object[]]>): void }).restore(counted);
      out.push(`${name}: the counts of ${counted.length} ${counted.length === 1 ? 'id' : 'ids'} carried into ${into.info.name}`);
    } finally {
      old.close();
    }
    rmSync(path, { force: true });
  }
  return out;
}

/** The data plane a previous `kpbpf attach` loaded and pinned. */
/** How long a reader waits for a connection-table resize (kp_ct set aside as kp_ct_old) to end. */
const RESIZE_WAIT_MS = 5000;

/**
 * `programPending`: the maps alone may be pinned (createMaps; the program is being loaded): the
 * data plane then has no program (progFd -1) until adoptPinnedProgram.
 */
export function openPinned(pinDir: string, o: { programPending?: boolean } = {}): Dataplane {
  checkLayout(pinDir);
  // A resize (Control.reload) sets kp_ct aside while the new program and table load: a reader
  // (writers wait for the lock) waits for it rather than calling the pins incomplete.
  const resizing = () => !existsSync(join(pinDir, CT_MAP)) && existsSync(join(pinDir, `${CT_MAP}_old`));
  const until = Date.now() + RESIZE_WAIT_MS;
  while (resizing() && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  if (resizing()) throw new KpError('KP_ERR_STATE', `the connection table in ${pinDir} is being resized (kp_ct_old is pinned) for more than ${RESIZE_WAIT_MS / 1000} s; try again: if the resize died, the next kpbpf command that changes the data plane (or a daemon's start) finishes or undoes it`);
  const present = KP_MAP_NAMES.filter((n) => existsSync(join(pinDir, n)));
  const hasProgram = existsSync(join(pinDir, PROG_PIN));
  if (present.length === 0 || (!hasProgram && !o.programPending)) {
    throw new KpError('KP_ERR_STATE', `the data plane is not loaded (nothing pinned in ${pinDir}): run kpbpf attach first`);
  }
  const missing = KP_MAP_NAMES.filter((n) => !present.includes(n));
  const retired = KP_RETIRED_MAPS.filter((n) => existsSync(join(pinDir, n)));
  if (missing.length > 0 && retired.length > 0) {
    throw new KpError('KP_ERR_STATE', `the data plane pinned in ${pinDir} was loaded by an older kpbpf (it has ${retired.join(', ')}, not ${missing.join(', ')}): kpbpf attach, kpbpf apply or kpbpf run takes it over with this kpbpf's program and keeps its connections`);
  }
  if (missing.length > 0) {
    throw new KpError('KP_ERR_STATE', `incomplete pins in ${pinDir}, missing: ${missing.join(', ')}; run kpbpf detach and attach again`);
  }
  const mapFds = {} as Record<KpMapName, number>;
  try {
    for (const n of KP_MAP_NAMES) mapFds[n] = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, n)), join(pinDir, n));
  } catch (e) {
    Object.values(mapFds).forEach(closeFd);
    throw e;
  }
  const dp = makeDataplane(-1, kpMapsFromFds(mapFds), pinDir);
  try {
    if (hasProgram) adoptPinnedProgram(dp);
    return dp;
  } catch (e) {
    dp.close();
    throw e;
  }
}

/** The program (and socket hooks) pinned in dp's directory, in place of those dp had. */
export function adoptPinnedProgram(dp: Dataplane): void {
  const pinDir = dp.pinDir!;
  const progFd = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, PROG_PIN)), join(pinDir, PROG_PIN));
  let sockProgs: SockProgs | undefined;
  try {
    if (SOCK_HOOKS.every((h) => existsSync(join(pinDir, sockProgPin(h.hook))))) {
      sockProgs = {} as SockProgs;
      for (const h of SOCK_HOOKS) sockProgs[h.hook] = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, sockProgPin(h.hook))), sockProgPin(h.hook));
    }
  } catch (e) {
    closeFd(progFd);
    if (sockProgs) Object.values(sockProgs).forEach((fd) => fd > 0 && closeFd(fd));
    throw e;
  }
  if (dp.progFd >= 0) closeFd(dp.progFd);
  if (dp.sockProgs) Object.values(dp.sockProgs).forEach(closeFd);
  dp.progFd = progFd;
  dp.sockProgs = sockProgs;
}

/** kp_progs of one load and the programs to put in it; owns their fds. */
class TailCalls {
  private readonly progs: BpfMap<number, number>;
  constructor(mapFd: number, private readonly entries: Array<[number, number]>) {
    this.progs = new BpfMap(mapFd, u32, u32, PROGS_MAP);
  }
  link(): void {
    for (const [slot, fd] of this.entries) this.progs.update(slot, fd);
  }
  close(): void {
    this.progs.close();
    for (const [, fd] of this.entries) closeFd(fd);
  }
}

function makeDataplane(progFd: number, maps: KpMaps, pinDir?: string, sockProgs?: SockProgs, tail?: TailCalls): Dataplane {
  const maglev = new MaglevStore(maps.maglevRef.fd, maps.maglevStore);
  const backendSlots = new BackendSlots(maps.backends);
  return {
    backendSlots,
    progFd,
    sockProgs,
    pinDir,
    maps,
    setMaglevTable: (vipId, slots, local) => maglev.set([[vipId, Uint32Array.from(slots)]], local),
    setMaglevTables: (tables, local) => maglev.set(tables, local),
    clearMaglevTable: (vipId, local) => maglev.clear(vipId, local),
    hasMaglevTable: (vipId, local) => maglev.has(vipId, local),
    getMaglevTable: (vipId, local) => maglev.get(vipId, local),
    linkTailCalls: () => tail?.link(),
    close() {
      maglev.close();
      backendSlots.close();
      maps.close();
      tail?.close();
      if (this.progFd >= 0) closeFd(this.progFd);
      if (this.sockProgs) Object.values(this.sockProgs).forEach(closeFd);
    },
  };
}

