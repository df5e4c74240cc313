// The live data plane: program fd plus typed maps, from a fresh load or from pins.
import { existsSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KpError } from '../errors.js';
import { LAYOUT_VERSION, u32 } from '../maps/codecs.js';
import { BpfMap } from '../maps/map.js';
import { KP_MAP_NAMES, kpMapsFromFds, type KpMapName, type KpMaps } from '../maps/kpmaps.js';
import koffi from 'koffi';
import { BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_MAP_TYPE, check, closeFd, dupFd, lb, libcFns, MAP_FAILED, MAP_SHARED, MapCreateOpts, opts, PROT_READ, PROT_WRITE } from './libbpf.js';
import { mapInfo } from './info.js';
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
   * Publish many tables (kp_maglev, or with `local` kp_maglev_local: the tables of local backends
   * only). A VIP whose table has the same size gets only its changed slots rewritten, in place;
   * the others get new inner maps, filled first, then one batched write of the outer map.
   */
  setMaglevTables(tables: ReadonlyArray<readonly [number, Uint32Array]>, local?: boolean): void;
  clearMaglevTable(vipId: number, local?: boolean): void;
  getMaglevTable(vipId: number, local?: boolean): Uint32Array | undefined;
  /**
   * Point kp_progs at this load's tail-called programs (the IPv6 program). loadDataplane does it
   * itself unless keepLinks; a reload calls it when the new program's maps are ready.
   */
  linkTailCalls(): void;
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

/** The layout version pinned in pinDir: undefined when nothing is pinned, 1 for pins made before
 * versions were kept (they lack kp_layout). */
export function pinnedLayout(pinDir: string): number | undefined {
  const p = join(pinDir, 'kp_layout');
  if (!existsSync(p)) return KP_MAP_NAMES.some((n) => n !== 'kp_layout' && existsSync(join(pinDir, n))) ? 1 : undefined;
  const fd = check('bpf_obj_get', lb.bpf_obj_get(p), p);
  const m = new BpfMap(fd, u32, u32, 'kp_layout');
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

export function loadDataplane(o: LoadOptions = {}): Dataplane {
  if (o.pinDir) {
    preparePinDir(o.pinDir);
    checkLayout(o.pinDir);
  }
  const obj = BpfObject.open(o.objectPath ?? DEFAULT_OBJECT);
  const fds: number[] = [];
  let tail: TailCalls | undefined;
  try {
    if (o.buckets !== undefined) obj.setMaxEntries(CT_MAP, 2 * o.buckets);
    const names = obj.maps().map((m) => m.name);
    const missing = KP_MAP_NAMES.filter((n) => !names.includes(n));
    if (missing.length > 0) throw new KpError('KP_ERR_STATE', `BPF object lacks maps: ${missing.join(', ')}`);
    const pinDir = o.pinDir;
    const fresh = pinDir ? names.filter((n) => !obj.reusePinned(n, join(pinDir, n))) : [];
    obj.load();
    if (pinDir) for (const n of fresh) obj.pinMap(n, join(pinDir, n));
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
      const pin = (fd: number, name: string) => {
        const p = join(o.pinDir!, name);
        if (existsSync(p)) unlinkSync(p); // a reload replaces the pinned program
        check('bpf_obj_pin', lb.bpf_obj_pin(fd, p), p);
      };
      pin(progFd, PROG_PIN);
      if (sockProgs) for (const h of SOCK_HOOKS) pin(sockProgs[h.hook], sockProgPin(h.hook));
      if (!o.keepLinks) {
        updateLinks(o.pinDir, progFd); // attached interfaces switch to the new program atomically
        if (sockProgs) updateCgroupLinks(o.pinDir, sockProgs);
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
    return makeDataplane(progFd, maps, o.pinDir, sockProgs, tail);
  } catch (e) {
    fds.forEach(closeFd);
    tail?.close();
    throw e;
  } finally {
    obj.close();
  }
}

/** The data plane a previous `kpbpf attach` loaded and pinned. */
/** How long a reader waits for a connection-table resize (kp_ct set aside as kp_ct_old) to end. */
const RESIZE_WAIT_MS = 5000;

export function openPinned(pinDir: string): Dataplane {
  checkLayout(pinDir);
  // A resize (Control.reload) sets kp_ct aside while the new program and table load: a reader
  // (writers wait for the lock) waits for it rather than calling the pins incomplete.
  const resizing = () => !existsSync(join(pinDir, CT_MAP)) && existsSync(join(pinDir, `${CT_MAP}_old`));
  const until = Date.now() + RESIZE_WAIT_MS;
  while (resizing() && Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  if (resizing()) throw new KpError('KP_ERR_STATE', `the connection table in ${pinDir} is being resized (kp_ct_old is pinned) for more than ${RESIZE_WAIT_MS / 1000} s; try again, or if no kpbpf is running, rename kp_ct_old back to kp_ct`);
  const present = KP_MAP_NAMES.filter((n) => existsSync(join(pinDir, n)));
  if (present.length === 0 || !existsSync(join(pinDir, PROG_PIN))) {
    throw new KpError('KP_ERR_STATE', `the data plane is not loaded (nothing pinned in ${pinDir}): run kpbpf attach first`);
  }
  const missing = KP_MAP_NAMES.filter((n) => !present.includes(n));
  if (missing.length > 0) {
    throw new KpError('KP_ERR_STATE', `incomplete pins in ${pinDir}, missing: ${missing.join(', ')}; run kpbpf detach and attach again`);
  }
  const progFd = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, PROG_PIN)), join(pinDir, PROG_PIN));
  const mapFds = {} as Record<KpMapName, number>;
  try {
    for (const n of KP_MAP_NAMES) mapFds[n] = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, n)), join(pinDir, n));
  } catch (e) {
    Object.values(mapFds).forEach(closeFd);
    closeFd(progFd);
    throw e;
  }
  let sockProgs: SockProgs | undefined;
  if (SOCK_HOOKS.every((h) => existsSync(join(pinDir, sockProgPin(h.hook))))) {
    sockProgs = {} as SockProgs;
    for (const h of SOCK_HOOKS) sockProgs[h.hook] = check('bpf_obj_get', lb.bpf_obj_get(join(pinDir, sockProgPin(h.hook))), sockProgPin(h.hook));
  }
  try {
    return makeDataplane(progFd, kpMapsFromFds(mapFds), pinDir, sockProgs);
  } catch (e) {
    closeFd(progFd);
    if (sockProgs) Object.values(sockProgs).forEach(closeFd);
    throw e;
  }
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
  return {
    progFd,
    sockProgs,
    pinDir,
    maps,
    setMaglevTable: (vipId, slots, local) => setMaglevTables(outer(maps, local), [[vipId, Uint32Array.from(slots)]]),
    setMaglevTables: (tables, local) => setMaglevTables(outer(maps, local), tables),
    clearMaglevTable: (vipId, local) => void outer(maps, local).delete(vipId),
    getMaglevTable: (vipId, local) => getMaglevTable(outer(maps, local), vipId),
    linkTailCalls: () => tail?.link(),
    close() {
      maps.close();
      tail?.close();
      closeFd(progFd);
      if (sockProgs) Object.values(sockProgs).forEach(closeFd);
    },
  };
}

/** An array map stores each value in 8 bytes (round_up(value_size, 8)); its mapping is whole pages. */
const ELEM = 8;
const mappedLength = (count: number) => Math.ceil((count * ELEM) / 4096) * 4096;

/**
 * Run `use` on the mmap'ed value area of an inner map (BPF_F_MMAPABLE) as u32 words, slot i at
 * word 2i, and unmap it.
 */
function withSlots<T>(fd: number, count: number, access: 'read' | 'write', what: string, use: (words: Uint32Array) => T): T {
  const prot = access === 'read' ? PROT_READ : PROT_READ | PROT_WRITE;
  const len = mappedLength(count);
  const p = libcFns.mmap(null, len, prot, MAP_SHARED, fd, 0);
  if (p === null || koffi.address(p) === MAP_FAILED) throw new KpError('KP_ERR_STATE', `mmap of ${what} failed (errno ${koffi.errno()})`);
  try {
    return use(new Uint32Array(koffi.view(p, count * ELEM)));
  } finally {
    libcFns.munmap(p, len);
  }
}

/** A filled inner map (Maglev table) for one VIP; the caller closes the fd. Filled by one copy
 * into its mapping: a write per slot costs ~100 ns each, 1 s for 10k VIPs of 1021 slots. */
function innerTable(vipId: number, slots: Uint32Array): number {
  if (slots.length === 0) throw new KpError('KP_ERR_ARG', `Maglev table for VIP ${vipId} is empty`);
  const what = `Maglev table of VIP ${vipId}, ${slots.length} slots`;
  const fd = check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.ARRAY, 'kp_maglev_in', 4, 4, slots.length, opts(MapCreateOpts, { map_flags: BPF_F_INNER_MAP | BPF_F_MMAPABLE })), what);
  try {
    withSlots(fd, slots.length, 'write', what, (w) => {
      for (let i = 0; i < slots.length; i++) w[2 * i] = slots[i];
    });
    return fd;
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

const outer = (maps: KpMaps, local?: boolean): BpfMap<number, number> => (local ? maps.maglevLocal : maps.maglev);

/**
 * Rewrite the slots of a VIP's current table that differ from `slots`, through its mapping; false
 * when it has no table of that size. Every write to an outer map waits for an RCU grace period
 * (10-30 ms here), which a one-endpoint change should not. Each 4-byte slot store is atomic, so a
 * new connection picks the old or the new backend of its slot, both live: callers mark removed
 * backends only after the publish, as with a swap. (Katran updates its rings the same way.)
 */
function patchMaglevTable(outerMap: BpfMap<number, number>, vipId: number, slots: Uint32Array): boolean {
  const id = outerMap.lookup(vipId);
  if (id === undefined) return false;
  const fd = lb.bpf_map_get_fd_by_id(id);
  if (fd < 0) return false; // replaced meanwhile: swap instead
  try {
    const info = mapInfo(fd);
    if (info.maxEntries !== slots.length || !(info.flags & BPF_F_MMAPABLE)) return false;
    withSlots(fd, slots.length, 'write', `Maglev table of VIP ${vipId}`, (w) => {
      for (let i = 0; i < slots.length; i++) if (w[2 * i] !== slots[i]) w[2 * i] = slots[i];
    });
    return true;
  } finally {
    closeFd(fd);
  }
}

function setMaglevTables(outerMap: BpfMap<number, number>, all: ReadonlyArray<readonly [number, Uint32Array]>): void {
  const tables = all.filter(([vipId, slots]) => !patchMaglevTable(outerMap, vipId, slots));
  if (!tables.length) return;
  const inners: number[] = [];
  try {
    for (const [vipId, slots] of tables) inners.push(innerTable(vipId, slots));
    // The atomic publish of each table; batched because every write to an outer map makes the
    // kernel wait for an RCU grace period (one wait per syscall, not per entry).
    outerMap.updateBatch(tables.map(([vipId], i) => [vipId, inners[i]] as const));
  } finally {
    inners.forEach(closeFd); // the outer map holds its own references
  }
}

function getMaglevTable(outerMap: BpfMap<number, number>, vipId: number): Uint32Array | undefined {
  const id = outerMap.lookup(vipId);
  if (id === undefined) return undefined;
  const fd = check('bpf_map_get_fd_by_id', lb.bpf_map_get_fd_by_id(id), `Maglev table of VIP ${vipId}`);
  try {
    const count = mapInfo(fd).maxEntries;
    return withSlots(fd, count, 'read', `Maglev table of VIP ${vipId}`, (w) => Uint32Array.from({ length: count }, (_, i) => w[2 * i]));
  } finally {
    closeFd(fd);
  }
}
