// Services, EndpointSlices and Nodes shaped as the API server serves them, for tests.
import type { Endpoint, EndpointSlice, Node, Service } from '../../src/kube/types.js';

let uid = 0;
const meta = (namespace: string | undefined, name: string, extra: Record<string, unknown> = {}) => ({
  name,
  ...(namespace !== undefined ? { namespace } : {}),
  uid: `00000000-0000-4000-8000-${String(++uid).padStart(12, '0')}`,
  creationTimestamp: '2026-12-01T00:00:00Z',
  ...extra,
});

/** A ClusterIP service on 198.18.100.1 port 80 (TCP) unless spec says otherwise. */
export function svc(name: string, spec: NonNullable<Service['spec']> = {}, status: Service['status'] = { loadBalancer: {} }, namespace = 'default'): Service {
  const clusterIP = spec.clusterIP ?? '198.18.100.1';
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(namespace, name),
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: clusterIP.includes(':') ? ['IPv6'] : ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      ports: [{ port: 80, protocol: 'TCP', targetPort: 8080 }],
      sessionAffinity: 'None',
      internalTrafficPolicy: 'Cluster',
      ...spec,
    } as Service['spec'],
    status,
  };
}

export function ep(address: string | string[], o: Omit<Endpoint, 'addresses'> = {}): Endpoint {
  return { addresses: Array.isArray(address) ? address : [address], conditions: o.conditions ?? { ready: true, serving: true, terminating: false }, ...o };
}

/** An EndpointSlice of `service`, labelled as the EndpointSlice controller labels them. */
export function slice(service: string, ports: Array<{ name: string; port: number; protocol?: string }>, endpoints: Endpoint[], o: { name?: string; addressType?: string; namespace?: string } = {}): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: meta(o.namespace ?? 'default', o.name ?? `${service}-abcde`, {
      labels: { 'kubernetes.io/service-name': service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      generateName: `${service}-`,
    }),
    addressType: o.addressType ?? (endpoints[0]?.addresses?.[0]?.includes(':') ? 'IPv6' : 'IPv4'),
    endpoints,
    ports: ports.map((p) => ({ name: p.name, protocol: p.protocol ?? 'TCP', port: p.port })),
  };
}

export function node(name: string, addresses: string[], labels: Record<string, string> = {}): Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: meta(undefined, name, { labels: { 'kubernetes.io/hostname': name, ...labels } }),
    spec: {},
    status: { addresses: [...addresses.map((a) => ({ type: 'InternalIP', address: a })), { type: 'Hostname', address: name }] },
  };
}
