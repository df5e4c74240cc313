// The Kubernetes API objects kpbpf reads, as the API serves them (core/v1 Service and Node,
// discovery.k8s.io/v1 EndpointSlice): only the fields kube-proxy reads, all optional, since a
// source never trusts an object's shape.

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface ServicePort {
  name?: string;
  protocol?: string; // TCP (default), UDP, SCTP
  port?: number;
  targetPort?: number | string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  spec?: {
    type?: string; // ClusterIP (default), NodePort, LoadBalancer, ExternalName
    clusterIP?: string;
    clusterIPs?: string[];
    ipFamilies?: string[]; // IPv4, IPv6
    ports?: ServicePort[];
    externalIPs?: string[];
    loadBalancerSourceRanges?: string[];
    externalTrafficPolicy?: string; // Cluster (default), Local
    internalTrafficPolicy?: string; // Cluster (default), Local
    healthCheckNodePort?: number;
    sessionAffinity?: string; // None (default), ClientIP
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
  };
  status?: {
    loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string; ipMode?: string }> };
  };
}

export interface EndpointConditions {
  ready?: boolean | null;
  serving?: boolean | null;
  terminating?: boolean | null;
}

export interface Endpoint {
  addresses?: string[];
  conditions?: EndpointConditions;
  nodeName?: string;
  zone?: string;
  hints?: { forZones?: Array<{ name?: string }>; forNodes?: Array<{ name?: string }> };
}

export interface EndpointSlice extends KubeObject {
  addressType?: string; // IPv4, IPv6, FQDN
  endpoints?: Endpoint[] | null;
  ports?: Array<{ name?: string | null; protocol?: string; port?: number | null }> | null;
}

export interface NodeAddress {
  type?: string; // InternalIP, ExternalIP, Hostname, ...
  address?: string;
}

export interface Node extends KubeObject {
  spec?: { taints?: Array<{ key?: string; effect?: string }> };
  status?: { addresses?: NodeAddress[] };
}

/** A LIST answer. */
export interface KubeList<T> {
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

/** One line of a watch stream. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T & { code?: number; reason?: string; message?: string };
}

/** namespace/name, as kube-proxy names a service. */
export const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** The label EndpointSlices name their service with. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
/** kube-proxy's selector for what it serves: not another proxy's, not headless. */
export const PROXY_LABEL_SELECTOR = '!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** The cluster autoscaler's taint on a node it is about to delete (kube-proxy's nodeEligible). */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

/**
 * What is kept of an object: the fields kube-proxy reads and nothing else (client-go's
 * SetTransform does the same for kube-proxy's informers). A real object's managedFields, targetRefs
 * and annotations take more memory than the rest of it.
 */
function keptMeta(m: ObjectMeta | undefined, labels: 'all' | string[]): ObjectMeta {
  const out: ObjectMeta = {};
  if (!m) return out;
  for (const k of ['name', 'namespace', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp'] as const) if (m[k] !== undefined) out[k] = m[k];
  if (m.labels) {
    if (labels === 'all') out.labels = m.labels;
    else for (const l of labels) if (m.labels[l] !== undefined) (out.labels ??= {})[l] = m.labels[l];
  }
  return out;
}

export function trimService(s: Service): Service {
  return { metadata: keptMeta(s.metadata, []), spec: s.spec, ...(s.status?.loadBalancer ? { status: { loadBalancer: s.status.loadBalancer } } : {}) };
}

/** The conditions an endpoint can have, one shared object each: 80k endpoints have a handful. */
const CONDITIONS = new Map<string, EndpointConditions>();
function sharedConditions(c: EndpointConditions): EndpointConditions {
  const key = `${c.ready}|${c.serving}|${c.terminating}`;
  let shared = CONDITIONS.get(key);
  if (!shared) {
    shared = Object.freeze({ ...(c.ready != null ? { ready: c.ready } : {}), ...(c.serving != null ? { serving: c.serving } : {}), ...(c.terminating != null ? { terminating: c.terminating } : {}) });
    CONDITIONS.set(key, shared);
  }
  return shared;
}

export function trimSlice(s: EndpointSlice): EndpointSlice {
  return {
    metadata: keptMeta(s.metadata, [SERVICE_NAME_LABEL]),
    addressType: s.addressType,
    ports: s.ports,
    endpoints: (s.endpoints ?? []).map(trimEndpoint),
  };
}

/** Fields added one by one in one order, so that 80k endpoints share a few hidden classes (a
 * spread of conditional literals gave each its own: 13 MB at 10k services). */
function trimEndpoint(e: Endpoint): Endpoint {
  const out: Endpoint = {};
  if (e.addresses) out.addresses = e.addresses.length <= 1 ? e.addresses : e.addresses.slice(0, 1);
  if (e.conditions) out.conditions = sharedConditions(e.conditions);
  if (e.nodeName !== undefined) out.nodeName = e.nodeName;
  if (e.hints) out.hints = e.hints;
  return out;
}

export function trimNode(n: Node): Node {
  return { metadata: keptMeta(n.metadata, 'all'), ...(n.spec?.taints ? { spec: { taints: n.spec.taints } } : {}), ...(n.status?.addresses ? { status: { addresses: n.status.addresses } } : {}) };
}
