// The data plane's maps (docs/DESIGN.md), typed.
import { KpError } from '../errors.js';
import { closeFd } from '../sys/libbpf.js';
import * as c from './codecs.js';
import { BpfMap, PerCpuMap } from './map.js';
import { CpuCounters } from './cpucounters.js';

/** Every map kp.bpf.c defines, by its name in the object (and its pin file name). */
export const KP_MAP_NAMES = [
  'kp_vips',
  'kp_vip_pfx',
  'kp_src_ranges',
  'kp_maglev_store',
  'kp_maglev_ref',
  'kp_backends',
  'kp_ct',
  'kp_frags',
  'kp_addrs',
  'kp_nexthop',
  'kp_config',
  'kp_settings',
  'kp_masq',
  'kp_sock',
  'kp_affinity',
  'kp_vip_affinity',
  'kp_layout',
  'kp_vip_stats_v2',
  'kp_be_stats_v2',
  'kp_stats',
  'kp_tx_ports',
] as const;
export type KpMapName = (typeof KP_MAP_NAMES)[number];
/** Counter arrays sliced per CPU (src/maps/cpucounters.ts): the loader makes each the object's
 * size times the possible CPUs. */
export const KP_CPU_SLICED_MAPS: readonly KpMapName[] = ['kp_vip_stats_v2', 'kp_be_stats_v2'];
/** Pins of maps an older kpbpf made that this one replaced (per-CPU counter arrays, before v2):
 * a load of this one over them copies their counts into their successors and removes them. */
export const KP_RETIRED_MAPS = ['kp_vip_stats', 'kp_be_stats'] as const;
export const KP_RETIRED_SUCCESSOR: Record<(typeof KP_RETIRED_MAPS)[number], 'vipStats' | 'beStats'> = { kp_vip_stats: 'vipStats', kp_be_stats: 'beStats' };
/** Maps the program keeps for itself (pinned with the rest, never read by the control plane). */
export const KP_INTERNAL_MAPS = ['kp_scratch', 'kp_be_hops', 'kp_progs', 'kp_l4_off', 'kp_csum_acc'] as const;

export interface KpMaps {
  vips: BpfMap<c.VipKey, c.Vip>;
  vipPfx: BpfMap<c.VipPfxKey, c.Vip>;
  /** (vip id, allowed source prefix) -> 1 */
  srcRanges: BpfMap<c.SrcKey, number>;
  /** [0] → the shared Maglev store: update takes a map fd, lookup returns the map id */
  maglevStore: BpfMap<number, number>;
  /** vip id (+ the local base) → a table's first word and length; written through its mapping
   * (src/loader/maglevstore.ts), this object only holds the fd */
  maglevRef: BpfMap<number, bigint>;
  backends: BpfMap<number, c.Backend>;
  /** connections: forward entries (dir 0) and reply entries (dir 1) */
  ct: BpfMap<c.FlowKey, c.Ct>;
  /** first fragments' ports */
  frags: BpfMap<c.FragKey, c.Frag>;
  /** VIP and backend addresses → ADDR_FLAG bits */
  addrs: BpfMap<string, number>;
  /** destination → cached FIB result */
  nexthop: BpfMap<string, c.NextHop>;
  /** control-plane settings kept with the pins */
  settings: BpfMap<number, c.Settings>;
  /** masquerade address and port range */
  masq: BpfMap<number, c.Masq>;
  /** the node's own sockets' translations */
  sock: BpfMap<c.SockKey, c.SockNat>;
  /** session affinity: (vip id, client) -> backend */
  affinity: BpfMap<c.AffinityKey, c.Affinity>;
  /** vip id -> session affinity timeout, seconds */
  vipAffinity: BpfMap<number, number>;
  /** [0]: the layout version of the kpbpf that created the pins */
  layout: BpfMap<number, number>;
  config: BpfMap<number, c.Config>;
  /** vip id → counters, each CPU its own (kp_vip_stats_v2) */
  vipStats: CpuCounters<c.VipStats>;
  /** backend id → packets and bytes, each CPU its own (kp_be_stats_v2) */
  beStats: CpuCounters<c.BackendStats>;
  stats: PerCpuMap<number, bigint>;
  /** ifindex → ifindex to redirect to (struct bpf_devmap_val.ifindex) */
  txPorts: BpfMap<number, c.DevmapVal>;
  close(): void;
}

/** Build KpMaps from one fd per map name; takes ownership of the fds (closed on error too). */
export function kpMapsFromFds(fds: Readonly<Record<KpMapName, number>>): KpMaps {
  const opened: Array<{ close(): void }> = [];
  const open = <T extends { close(): void }>(name: KpMapName, f: (fd: number) => T): T => {
    const m = f(fds[name]);
    opened.push(m);
    return m;
  };
  try {
    const maps: Omit<KpMaps, 'close'> = {
      vips: open('kp_vips', (fd) => new BpfMap(fd, c.vipKey, c.vip, 'kp_vips')),
      vipPfx: open('kp_vip_pfx', (fd) => new BpfMap(fd, c.vipPfxKey, c.vip, 'kp_vip_pfx')),
      srcRanges: open('kp_src_ranges', (fd) => new BpfMap(fd, c.srcKey, c.u32, 'kp_src_ranges')),
      maglevStore: open('kp_maglev_store', (fd) => new BpfMap(fd, c.u32, c.u32, 'kp_maglev_store')),
      maglevRef: open('kp_maglev_ref', (fd) => new BpfMap(fd, c.u32, c.u64, 'kp_maglev_ref')),
      backends: open('kp_backends', (fd) => new BpfMap(fd, c.u32, c.backend, 'kp_backends')),
      ct: open('kp_ct', (fd) => new BpfMap(fd, c.flowKey, c.ct, 'kp_ct')),
      frags: open('kp_frags', (fd) => new BpfMap(fd, c.fragKey, c.frag, 'kp_frags')),
      addrs: open('kp_addrs', (fd) => new BpfMap(fd, c.addr16, c.u32, 'kp_addrs')),
      nexthop: open('kp_nexthop', (fd) => new BpfMap(fd, c.addr16, c.nextHop, 'kp_nexthop')),
      config: open('kp_config', (fd) => new BpfMap(fd, c.u32, c.config, 'kp_config')),
      settings: open('kp_settings', (fd) => new BpfMap(fd, c.u32, c.settings, 'kp_settings')),
      masq: open('kp_masq', (fd) => new BpfMap(fd, c.u32, c.masq, 'kp_masq')),
      sock: open('kp_sock', (fd) => new BpfMap(fd, c.sockKey, c.sockNat, 'kp_sock')),
      affinity: open('kp_affinity', (fd) => new BpfMap(fd, c.affinityKey, c.affinity, 'kp_affinity')),
      vipAffinity: open('kp_vip_affinity', (fd) => new BpfMap(fd, c.u32, c.u32, 'kp_vip_affinity')),
      layout: open('kp_layout', (fd) => new BpfMap(fd, c.u32, c.u32, 'kp_layout')),
      vipStats: open('kp_vip_stats_v2', (fd) => new CpuCounters(fd, c.vipStats, 'kp_vip_stats_v2')),
      beStats: open('kp_be_stats_v2', (fd) => new CpuCounters(fd, c.backendStats, 'kp_be_stats_v2')),
      stats: open('kp_stats', (fd) => new PerCpuMap(fd, c.u32, c.u64, 'kp_stats')),
      txPorts: open('kp_tx_ports', (fd) => new BpfMap(fd, c.u32, c.devmapVal, 'kp_tx_ports')),
    };
    return { ...maps, close: () => opened.forEach((m) => m.close()) };
  } catch (e) {
    opened.forEach((m) => m.close());
    // The map that threw closed its own fd; close the ones not reached yet.
    for (const n of KP_MAP_NAMES.slice(opened.length + 1)) closeFd(fds[n]);
    if (e instanceof KpError) throw e;
    throw new KpError('KP_ERR_STATE', `cannot open the data plane maps: ${(e as Error).message}`);
  }
}
