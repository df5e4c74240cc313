// Views of the running data plane, as the CLI prints them and `apply` diffs against them.
import type { CrossEncap, VipType } from '../config/types.js';
export { VIP_TYPES, type CrossEncap, type VipType } from '../config/types.js';
import type { CtTimeouts } from '../config/timeouts.js';
export type Protocol = 'tcp' | 'udp';
export type BackendState = 'active' | 'draining';

export interface VipSpec {
  prefix: string; // canonical, e.g. '198.18.100.10/32'
  protocol: Protocol;
  port: number;
  targetPort: number;
  /** Maglev table size (prime); left out: automatic, a prime >= 100 x backends (autoTableLen) */
  newLen?: number;
  /** its node port, served on every node address (0 or left out: none) */
  nodePort?: number;
  /** left out: nodeport if it has a node port, else clusterip */
  type?: VipType;
  /** loadbalancer only: the source prefixes new connections may come from (loadBalancerSourceRanges) */
  sourceRanges?: string[];
  /** externalTrafficPolicy (node port, LoadBalancer and external IP traffic): local = this node's endpoints only */
  externalTrafficPolicy?: TrafficPolicy;
  /** internalTrafficPolicy (cluster IP traffic) */
  internalTrafficPolicy?: TrafficPolicy;
  /** session affinity ClientIP with this timeout in seconds (sessionAffinityConfig); 0 or left out: none */
  sessionAffinityTimeout?: number;
  /** backends of the other family: NAT46 (an IPv4 VIP) or NAT64 (an IPv6 VIP); left out: the VIP's family */
  encap?: CrossEncap;
}


export type TrafficPolicy = 'cluster' | 'local';

export interface BackendView {
  id: number;
  address: string;
  port: number;
  weight: number;
  state: BackendState;
  gen: number;
  /** on this node (eligible under a local traffic policy) */
  local?: boolean;
  /** serving but terminating: new connections only while no ready backend exists */
  terminating?: boolean;
  /** Maglev slots it holds (only when asked for) */
  slots?: number;
}

export interface VipView extends VipSpec {
  id: number;
  /** the table's size now */
  newLen: number;
  /** the size follows the backend count (new_len left out) */
  newLenAuto?: true;
  /** the node addresses its node port is served on */
  nodeAddresses?: string[];
  backends: BackendView[];
}

export interface ConfView {
  /** connections kp_ct holds */
  buckets: number;
  /** VPP's timeout: the UDP one */
  timeout: number;
  timeouts: CtTimeouts;
  hashSeed: number;
  /** "min-max" */
  nodePortRange: string;
  /** prefixes node ports are served on; [] = every node address */
  nodePortAddresses: string[];
  /** source address of masqueraded LoadBalancer/external IP and hairpin connections, or 'none' */
  masqueradeAddress: string;
  /** the same for IPv6 VIPs, or 'none' */
  masqueradeAddress6: string;
  /** "min-max": the source ports masqueraded connections take */
  masqueradePorts: string;
  /** "addr/96": the prefix NAT46 embeds clients' IPv4 addresses in */
  nat46Prefix: string;
}

export interface LinkView {
  ifname: string;
  ifindex: number;
  mode?: string;
  redirect: boolean;
}

/** An interface the data plane came off, and the settings its attach had changed, put back. */
export interface DetachedView {
  ifname: string;
  /** e.g. "rp_filter 2 -> 1" */
  restored: string[];
}

export interface VipCounters {
  existingPkts: number;
  firstPkts: number;
  untrackedPkts: number;
  noServerPkts: number;
  bytes: number;
  replyPkts: number;
  replyBytes: number;
}

export interface StatsView {
  global: Record<string, number>;
  vips: (VipSpec & { id: number; counters: VipCounters; backends: { address: string; port: number; packets: number; bytes: number }[] })[];
}

/** One connection (its forward record in kp_ct). */
export interface FlowView {
  protocol: Protocol | string;
  client: string;
  vip: string;
  backend: string;
  /** enum kp_ct_state name: syn_sent, established, time_wait, udp, udp_stream... */
  state: string;
  /** the client port the backend sees, when it was remapped (a collision) */
  natPort?: number;
  /** masqueraded: the source address and port the backend sees */
  masqueradedAs?: string;
  /** picked up mid-connection */
  loose?: boolean;
  idleSeconds: number;
  timeoutSeconds: number;
  /** expired, or its backend is gone: the next packet starts a new connection */
  stale: boolean;
}
