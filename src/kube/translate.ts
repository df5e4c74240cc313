// A Service and its EndpointSlices as kpbpf VIPs: kube-proxy's rules (pkg/proxy in
// kubernetes/kubernetes), as a pure function. The VIPs come out in the config file's own form, so
// that the file's validation checks them too. Each rule names the kube-proxy code it follows.
import { isIPv4, isIPv6 } from 'node:net';
import { parseAddress } from '../config/address.js';
import { addrToBytes, bytesToAddr, maskPrefix, V4_MAPPED_BITS } from '../maps/addr.js';
import type { Endpoint, EndpointSlice, Service, ServicePort } from './types.js';

/** What the translation knows of this node. */
export interface NodeView {
  name: string;
  /** topology.kubernetes.io/zone, if labelled */
  zone?: string;
}

/** A VIP as a config file spells it (src/config/schema.ts). */
export interface VipJson {
  prefix: string;
  protocol: 'tcp' | 'udp';
  port: number;
  target_port: number;
  type: 'clusterip' | 'nodeport' | 'loadbalancer' | 'externalip';
  node_port?: number;
  source_ranges?: string[];
  external_traffic_policy?: 'local';
  internal_traffic_policy?: 'local';
  health_check_node_port?: number;
  session_affinity?: 'ClientIP';
  session_affinity_timeout?: number;
  name: string;
  backends: Array<{ address: string; local?: true; terminating?: true }>;
}

/** One endpoint of a service port, as endpointslicecache.go reads it. */
export interface EndpointInfo {
  address: string;
  port: number;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  local: boolean;
  zoneHints: string[];
  nodeHints: string[];
}

export interface Translation {
  vips: VipJson[];
  /** what was left out and why (ports of another protocol, unusable addresses, ...) */
  notes: string[];
}

type Family = 4 | 6;
const FAMILY_NAME: Record<string, Family> = { IPv4: 4, IPv6: 6 };

/** ShouldSkipService (pkg/proxy/util): headless and ExternalName services are not proxied. */
export function skipReason(svc: Service): string | undefined {
  const spec = svc.spec ?? {};
  if (spec.type === 'ExternalName') return 'type ExternalName';
  if (spec.clusterIP === 'None' || !spec.clusterIP) return 'headless (no cluster IP)';
  return undefined;
}

/** The family of an address, or undefined if it is not one (a hostname, garbage). */
function familyOf(addr: string | undefined): Family | undefined {
  if (typeof addr !== 'string') return undefined;
  const a = parseAddress(addr);
  return typeof a === 'string' ? undefined : a.family;
}

/**
 * The cluster IP of each family (servicechangetracker: one proxier per family, each taking the
 * clusterIPs entry whose ipFamilies entry is its own; a single-stack service has clusterIP only).
 */
export function clusterIPsByFamily(svc: Service): Map<Family, string> {
  const spec = svc.spec ?? {};
  const ips = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const out = new Map<Family, string>();
  ips.forEach((ip, i) => {
    const f = familyOf(ip);
    const named = spec.ipFamilies?.[i] !== undefined ? FAMILY_NAME[spec.ipFamilies[i]] : f;
    if (f !== undefined && named === f && !out.has(f)) out.set(f, ip);
  });
  return out;
}

const protocolOf = (p: { protocol?: string }) => p.protocol ?? 'TCP';

/**
 * Endpoints of one service port and family, from every slice of the service (endpointslicecache.go):
 * slices of the family's addressType (FQDN never), the slice port of the same name and protocol (its
 * number is the resolved target port; targetPort is never read), addresses[0], conditions defaulted
 * (ready and serving true when unset, terminating false), local when nodeName is this node. The same
 * address:port in two slices counts once, the non-terminating copy preferred.
 */
export function endpointsOf(slices: EndpointSlice[], port: ServicePort, family: Family, nodeName: string): EndpointInfo[] {
  const want = port.name ?? '';
  const proto = protocolOf(port);
  const out: EndpointInfo[] = [];
  // address:port -> its index in out (a slice's endpoints share its port: the address alone is the key within one)
  const seen = new Map<string, number>();
  for (const s of slices) {
    if (FAMILY_NAME[s.addressType ?? ''] !== family) continue;
    const sp = (s.ports ?? []).find((p) => (p.name ?? '') === want && protocolOf(p) === proto);
    if (!sp || typeof sp.port !== 'number' || sp.port < 1 || sp.port > 65535) continue;
    const suffix = slices.length > 1 ? `|${sp.port}` : '';
    for (const ep of s.endpoints ?? []) {
      const info = endpointInfo(ep, sp.port, family, nodeName);
      if (!info) continue;
      const key = suffix ? info.address + suffix : info.address;
      const had = seen.get(key);
      if (had === undefined) {
        seen.set(key, out.length);
        out.push(info);
      } else if (out[had].terminating && !info.terminating) out[had] = info;
    }
  }
  return out;
}

const NONE: string[] = [];
const names = (list: Array<{ name?: string }> | undefined) => (list?.length ? list.flatMap((z) => (typeof z.name === 'string' ? [z.name] : [])) : NONE);

function endpointInfo(ep: Endpoint, port: number, family: Family, nodeName: string): EndpointInfo | undefined {
  const text = ep.addresses?.[0];
  if (typeof text !== 'string') return undefined;
  const a = parseAddress(text);
  if (typeof a === 'string' || a.family !== family) return undefined;
  const c = ep.conditions ?? {};
  return {
    address: a.text,
    port,
    ready: c.ready == null || c.ready === true,
    serving: c.serving == null || c.serving === true,
    terminating: c.terminating === true,
    local: ep.nodeName !== undefined && ep.nodeName === nodeName,
    zoneHints: names(ep.hints?.forZones),
    nodeHints: names(ep.hints?.forNodes),
  };
}

/** ExternallyAccessible (pkg/apis/core/v1/helper... apiservice): node ports, load balancers, external IPs. */
export function externallyAccessible(svc: Service): boolean {
  const t = svc.spec?.type;
  return t === 'NodePort' || t === 'LoadBalancer' || (svc.spec?.externalIPs?.length ?? 0) > 0;
}

export interface TrafficPolicies {
  externalLocal: boolean;
  internalLocal: boolean;
}

/** ExternalPolicyLocal / InternalPolicyLocal (pkg/proxy/serviceport.go). */
export function policiesOf(svc: Service): TrafficPolicies {
  return {
    externalLocal: externallyAccessible(svc) && svc.spec?.externalTrafficPolicy === 'Local',
    internalLocal: svc.spec?.internalTrafficPolicy === 'Local',
  };
}

/**
 * topologyModeFromHints (pkg/proxy/topology.go): node hints when every ready endpoint has some and
 * one names this node; else zone hints when every ready endpoint has some and one names this node's
 * zone; else no filtering.
 */
export function topologyMode(eps: EndpointInfo[], node: NodeView): 'node' | 'zone' | undefined {
  let allNode = true;
  let forNode = false;
  let allZone = true;
  let forZone = false;
  for (const e of eps) {
    if (!e.ready) continue;
    if (!e.nodeHints.length) allNode = false;
    else if (e.nodeHints.includes(node.name)) forNode = true;
    if (!e.zoneHints.length) allZone = false;
    else if (node.zone && e.zoneHints.includes(node.zone)) forZone = true;
  }
  if (allNode && forNode) return 'node';
  if (allZone && forZone) return 'zone';
  return undefined;
}

/**
 * CategorizeEndpoints (pkg/proxy/topology.go), as kpbpf's data plane takes it: the data plane
 * itself prefers ready backends to terminating ones and picks local ones for a local policy (its
 * flags), so the translation keeps each endpoint that either set can use, flagged:
 * - cluster set: ready endpoints that pass the topology hints, or if there are none, serving
 *   terminating ones;
 * - local set: local ready endpoints, or if none, local serving terminating ones.
 * Not ready and not serving-terminating: in neither.
 */
export function usableEndpoints(eps: EndpointInfo[], svc: Service, node: NodeView): EndpointInfo[] {
  const pol = policiesOf(svc);
  const usesCluster = !pol.internalLocal || (externallyAccessible(svc) && !pol.externalLocal);
  const usesLocal = pol.internalLocal || pol.externalLocal;
  const mode = usesCluster ? topologyMode(eps, node) : undefined;
  const inTopology = (e: EndpointInfo) => mode === undefined || (mode === 'node' ? e.nodeHints.includes(node.name) : e.zoneHints.includes(node.zone!));
  return eps.filter((e) => {
    if (e.ready) return (usesCluster && inTopology(e)) || (usesLocal && e.local);
    return e.serving && e.terminating;
  });
}

/**
 * A source range as Go's net.ParseCIDR reads it (host bits cleared), in canonical text, or undefined
 * if it is not a CIDR of the family.
 */
export function sourceRange(text: string, family: Family): string | undefined {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const f: Family | undefined = isIPv4(m[1]) ? 4 : isIPv6(m[1]) ? 6 : undefined;
  const len = Number(m[2]);
  if (f !== family || len > (f === 4 ? 32 : 128)) return undefined;
  const addr = maskPrefix(addrToBytes(m[1]), f === 4 ? V4_MAPPED_BITS + len : len);
  return `${bytesToAddr(addr)}/${len}`;
}

/** Canonical host prefix of an address of the family, or undefined. */
function hostPrefix(addr: string, family: Family): string | undefined {
  const a = parseAddress(addr);
  if (typeof a === 'string' || a.family !== family) return undefined;
  return `${a.text}/${family === 4 ? 32 : 128}`;
}

/**
 * The target port the VIP forwards to: a kpbpf VIP has one, where a Kubernetes endpoint has its own.
 * The port most endpoints have (the lowest of equals); with none, the service's numeric targetPort,
 * else its port (nothing is forwarded then).
 */
function targetPortOf(eps: EndpointInfo[], port: ServicePort): number {
  if (!eps.length) return typeof port.targetPort === 'number' && port.targetPort > 0 ? port.targetPort : (port.port as number);
  const n = new Map<number, number>();
  for (const e of eps) n.set(e.port, (n.get(e.port) ?? 0) + 1);
  let best = eps[0].port;
  for (const [p, c] of n) if (c > n.get(best)! || (c === n.get(best) && p < best)) best = p;
  return best;
}

/**
 * Every VIP of a service: per family with a cluster IP and per TCP or UDP port, the cluster IP (with
 * its node port), each external IP and each load-balancer ingress IP (ipMode VIP or unset;
 * hostnames and ipMode Proxy are the load balancer's to serve). Skipped services give none.
 */
export function translateService(svc: Service, slices: EndpointSlice[], node: NodeView): Translation {
  const notes: string[] = [];
  const skip = skipReason(svc);
  if (skip) return { vips: [], notes: [skip] };
  const spec = svc.spec!;
  const name = `${svc.metadata?.namespace ?? ''}/${svc.metadata?.name ?? ''}`;
  const pol = policiesOf(svc);
  const affinity = spec.sessionAffinity === 'ClientIP';
  const affinityTimeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  const lbIPs = (spec.type === 'LoadBalancer' ? (svc.status?.loadBalancer?.ingress ?? []) : []).filter((i) => {
    if (!i.ip) return false;
    if (i.ipMode !== undefined && i.ipMode !== 'VIP') {
      notes.push(`load balancer IP ${i.ip}: ipMode ${i.ipMode} is the load balancer's to serve`);
      return false;
    }
    return true;
  });
  let healthCheckGiven = false;
  const vips: VipJson[] = [];
  const seen = new Set<string>();
  for (const [family, clusterIP] of clusterIPsByFamily(svc)) {
    // Ranges of the other family are the other family's VIPs' (kube-proxy filters them per family).
    const ranges = [...new Set((spec.loadBalancerSourceRanges ?? []).flatMap((r) => sourceRange(r, family) ?? []))];
    for (const port of spec.ports ?? []) {
      const proto = protocolOf(port);
      if (proto !== 'TCP' && proto !== 'UDP') {
        notes.push(`port ${port.name ?? port.port}: protocol ${proto} is not served by kpbpf`);
        continue;
      }
      if (typeof port.port !== 'number' || port.port < 1 || port.port > 65535) continue;
      const eps = usableEndpoints(endpointsOf(slices, port, family, node.name), svc, node);
      const target = targetPortOf(eps, port);
      const other = eps.filter((e) => e.port !== target);
      if (other.length) notes.push(`port ${port.name ?? port.port}: ${other.length} endpoint(s) on another port than ${target} left out (one target port per VIP)`);
      // Fields assigned one by one: 80k backends share a few hidden classes (spreads of conditional
      // literals are slower and can give each object its own).
      const backends: VipJson['backends'] = [];
      for (const e of eps) {
        if (e.port !== target) continue;
        const b: VipJson['backends'][number] = { address: e.address };
        if (e.local) b.local = true;
        if (e.terminating) b.terminating = true;
        backends.push(b);
      }
      const common = {
        protocol: proto.toLowerCase() as 'tcp' | 'udp',
        port: port.port,
        target_port: target,
        ...(affinity ? { session_affinity: 'ClientIP' as const, ...(affinityTimeout ? { session_affinity_timeout: affinityTimeout } : {}) } : {}),
        name,
        backends,
      };
      const external = pol.externalLocal ? { external_traffic_policy: 'local' as const } : {};
      const add = (v: VipJson) => {
        const k = `${v.prefix} ${v.protocol} ${v.port}`;
        if (seen.has(k)) return;
        seen.add(k);
        // kube-proxy serves one health check node port per service.
        if (!healthCheckGiven && spec.healthCheckNodePort && v.external_traffic_policy === 'local') {
          v.health_check_node_port = spec.healthCheckNodePort;
          healthCheckGiven = true;
        }
        vips.push(v);
      };
      const nodePort = (spec.type === 'NodePort' || spec.type === 'LoadBalancer') && port.nodePort ? port.nodePort : 0;
      add({
        prefix: hostPrefix(clusterIP, family)!,
        ...common,
        type: nodePort ? 'nodeport' : 'clusterip',
        ...(nodePort ? { node_port: nodePort, ...external } : {}),
        ...(pol.internalLocal ? { internal_traffic_policy: 'local' as const } : {}),
      });
      for (const ip of spec.externalIPs ?? []) {
        const prefix = hostPrefix(ip, family);
        if (prefix) add({ prefix, ...common, type: 'externalip', ...external });
        else if (familyOf(ip) === undefined) notes.push(`external IP ${ip}: not an address`);
      }
      for (const ing of lbIPs) {
        const prefix = hostPrefix(ing.ip!, family);
        if (prefix) add({ prefix, ...common, type: 'loadbalancer', ...(ranges.length ? { source_ranges: ranges } : {}), ...external });
      }
    }
  }
  return { vips, notes };
}
