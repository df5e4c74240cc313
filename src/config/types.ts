// The validated config (`kpbpf apply -f FILE`), every default filled and addresses canonical.
import type { CtTimeouts } from './timeouts.js';

export type XdpMode = 'native' | 'generic' | 'auto';
/** Kubernetes' service types, as the seed plugin names them. */
export type VipType = 'clusterip' | 'nodeport' | 'loadbalancer' | 'externalip';
export const VIP_TYPES: VipType[] = ['clusterip', 'nodeport', 'loadbalancer', 'externalip'];
/** A VIP whose backends are of the other family. */
export type CrossEncap = 'nat46' | 'nat64';
export type L4Protocol = 'tcp' | 'udp';

export interface KpConfConfig {
  /** Connections kp_ct holds (two entries each), a power of two in [1024, 16777216]. */
  buckets: number;
  /** Idle timeout in seconds per connection state, [1, KP_TIMEOUT_MAX]. */
  timeouts: CtTimeouts;
  /**
   * Seed of the flow hash that indexes Maglev tables. One value for a whole cluster makes every node
   * pick the same backend for a flow; left out, the running seed stays (random at first load).
   */
  hash_seed?: number;
  /** node ports allowed, [min, max] */
  nodeport_range: [number, number];
  /** prefixes of the node addresses node ports are served on (canonical, sorted); [] = every address */
  nodeport_addresses: string[];
  /** source of masqueraded LoadBalancer/external IP and hairpin connections, or 'none'; left out, the running one stays */
  masquerade_address?: string;
  /** the same for IPv6 VIPs, or 'none'; left out, the running one stays */
  masquerade_address6?: string;
  /** source ports of masqueraded connections, [min, max] */
  masquerade_ports: [number, number];
  /** the IPv6 /96 NAT46 embeds clients' IPv4 addresses in (canonical); left out, the running one stays (first: 64:ff9b::/96) */
  nat46_prefix?: string;
}

export interface KpInterfaceConfig {
  name: string;
  mode: XdpMode;
  /** May the data plane XDP_REDIRECT out of this interface (kp_tx_ports)? */
  redirect: boolean;
}

export interface KpBackendConfig {
  /** Canonical address text: dotted quad, or RFC 5952 IPv6. */
  address: string;
  weight: number;
  /** on this node (eligible under a local traffic policy); left out when false */
  local?: boolean;
  /** serving but terminating (KEP-1669): new connections only while no ready backend exists; left out when false */
  terminating?: boolean;
}

export interface KpVipConfig {
  /** Canonical prefix text, always with its length: "198.18.100.1/32", "2001:db8::/64". */
  prefix: string;
  family: 4 | 6;
  protocol: L4Protocol;
  port: number;
  target_port: number;
  /** Maglev table size (prime); left out: automatic, a prime >= 100 x backends */
  new_len?: number;
  /** 0: none; else served on every node address too */
  node_port: number;
  /** Kubernetes' service type: forwarding is the same; node_port and source_ranges must fit it */
  type: VipType;
  /** loadbalancer only: allowed source prefixes of new connections (canonical, sorted); [] = all */
  source_ranges: string[];
  /** left out: cluster */
  external_traffic_policy?: 'local';
  internal_traffic_policy?: 'local';
  /** session affinity ClientIP with this timeout in seconds; left out: none */
  session_affinity_timeout?: number;
  /** externalTrafficPolicy local: the port `kpbpf run` answers load balancers' health checks on */
  health_check_node_port?: number;
  /** the service's name, for health-check answers ("namespace/name") */
  name?: string;
  /** backends of the other family (NAT46: an IPv4 VIP, NAT64: an IPv6 one); left out: the VIP's family */
  encap?: CrossEncap;
  backends: KpBackendConfig[];
}

export interface KpConfig {
  conf: KpConfConfig;
  interfaces: KpInterfaceConfig[];
  vips: KpVipConfig[];
}

export const KP_CONFIG_DEFAULTS = {
  buckets: 131072, // KP_DEFAULT_BUCKETS
  mode: 'auto' as XdpMode,
  redirect: false,
  protocol: 'tcp' as L4Protocol,
  weight: 1,
} as const;

export const KP_BUCKETS_MIN = 1024;
export const KP_BUCKETS_MAX = 16777216;
export { KP_TIMEOUT_MAX } from './timeouts.js';
export const KP_WEIGHT_MAX = 65535;
export const KP_HASH_SEED_MAX = 0xffffffff;
/** Kubernetes' default service-node-port-range. */
/** Kubernetes' sessionAffinityConfig.clientIP.timeoutSeconds: default and bounds. */
export const AFFINITY_TIMEOUT_DEFAULT = 10800;
export const AFFINITY_TIMEOUT_MAX = 86400;
export const KP_NODEPORT_MIN = 30000;
export const KP_NODEPORT_MAX = 32767;
/** IFNAMSIZ - 1: Linux interface names are at most 15 bytes. */
export const KP_IFNAME_MAX = 15;
