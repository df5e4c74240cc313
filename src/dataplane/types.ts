// Views of the running data plane, as the CLI prints them and `apply` diffs against them.
export type Protocol = 'tcp' | 'udp';
export type BackendState = 'active' | 'draining';

export interface VipSpec {
  prefix: string; // canonical, e.g. '198.18.100.10/32'
  protocol: Protocol;
  port: number;
  targetPort: number;
  newLen: number;
}

export interface BackendView {
  id: number;
  address: string;
  port: number;
  weight: number;
  state: BackendState;
  gen: number;
  /** Maglev slots it holds (only when asked for) */
  slots?: number;
}

export interface VipView extends VipSpec {
  id: number;
  backends: BackendView[];
}

export interface ConfView {
  buckets: number;
  timeout: number;
  hashSeed: number;
}

export interface LinkView {
  ifname: string;
  ifindex: number;
  mode?: string;
  redirect: boolean;
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

export interface FlowView {
  cpu: number;
  protocol: Protocol | string;
  client: string;
  vip: string;
  backend: string;
  idleSeconds: number;
  stale: boolean;
}
