// The Service + EndpointSlice translation as a table of cases, each naming the kube-proxy rule it
// follows (pkg/proxy in kubernetes/kubernetes).
import t from 'tap';
import { translateService, endpointsOf, topologyMode, sourceRange, clusterIPsByFamily, type NodeView, type VipJson } from '../../src/kube/translate.js';
import { trimNode, trimService, trimSlice, type EndpointSlice, type Service } from '../../src/kube/types.js';
import { svc, slice, ep } from '../helpers/kubeobjects.js';

const NODE: NodeView = { name: 'node-a', zone: 'zone-1' };

interface Case {
  rule: string;
  service: Service;
  slices?: EndpointSlice[];
  node?: NodeView;
  /** the VIPs, compared with t.match (fields left out are not compared) */
  want: Array<Partial<VipJson>>;
  /** exact backends of want[0], as "address[,local][,terminating]" */
  backends?: string[];
  note?: RegExp;
}

const be = (v: VipJson) => v.backends.map((b) => [b.address, ...(b.local ? ['local'] : []), ...(b.terminating ? ['terminating'] : [])].join(','));

const cases: Case[] = [
  {
    rule: 'ShouldSkipService: headless (clusterIP None) is not proxied',
    service: svc('web', { clusterIP: 'None', clusterIPs: ['None'] }),
    want: [],
    note: /headless/,
  },
  {
    rule: 'ShouldSkipService: ExternalName is not proxied',
    service: svc('ext', { type: 'ExternalName', clusterIP: '', clusterIPs: [] }),
    want: [],
    note: /ExternalName/,
  },
  {
    rule: 'a ClusterIP service port: one VIP, the slice port is the target port (targetPort never read)',
    service: svc('web', { ports: [{ name: 'http', port: 80, targetPort: 'http-named' }] }),
    slices: [slice('web', [{ name: 'http', port: 8080 }], [ep('198.18.1.1'), ep('198.18.1.2', { nodeName: 'node-a' })])],
    want: [{ prefix: '198.18.100.1/32', protocol: 'tcp', port: 80, target_port: 8080, type: 'clusterip', name: 'default/web' }],
    backends: ['198.18.1.1', '198.18.1.2,local'],
  },
  {
    rule: 'endpointslicecache: ports matched on name and protocol; a slice of another port name gives nothing',
    service: svc('web', { ports: [{ name: 'http', port: 80 }, { name: 'dns', port: 53, protocol: 'UDP' }] }),
    slices: [slice('web', [{ name: 'http', port: 8080 }, { name: 'dns', port: 5353, protocol: 'UDP' }, { name: 'dns', port: 5354, protocol: 'TCP' }], [ep('198.18.1.1')])],
    want: [{ protocol: 'tcp', port: 80, target_port: 8080 }, { protocol: 'udp', port: 53, target_port: 5353 }],
  },
  {
    rule: 'endpointslicecache: conditions default ready/serving true, terminating false; not ready and not serving-terminating: unused',
    service: svc('web'),
    slices: [
      slice('web', [{ name: '', port: 8080 }], [
        ep('198.18.1.1', { conditions: {} }),
        ep('198.18.1.2', { conditions: { ready: false, serving: false, terminating: false } }),
        ep('198.18.1.3', { conditions: { ready: false, serving: false, terminating: true } }),
        ep('198.18.1.4', { conditions: { ready: false, serving: true, terminating: true } }),
      ]),
    ],
    want: [{ port: 80 }],
    backends: ['198.18.1.1', '198.18.1.4,terminating'],
  },
  {
    rule: 'endpointslicecache: the union of slices, an address:port counted once, the non-terminating copy preferred; addresses[0] only; FQDN slices ignored',
    service: svc('web'),
    slices: [
      slice('web', [{ name: '', port: 8080 }], [ep('198.18.1.1', { conditions: { ready: false, serving: true, terminating: true } }), ep(['198.18.1.5', '198.18.1.6'])], { name: 'web-a' }),
      slice('web', [{ name: '', port: 8080 }], [ep('198.18.1.1')], { name: 'web-b' }),
      slice('web', [{ name: '', port: 8080 }], [ep('web.example.com')], { name: 'web-c', addressType: 'FQDN' }),
    ],
    want: [{ port: 80 }],
    backends: ['198.18.1.1', '198.18.1.5'],
  },
  {
    rule: 'servicechangetracker: dual-stack gives one VIP per family, each with its family slices',
    service: svc('web', { clusterIP: '198.18.100.1', clusterIPs: ['198.18.100.1', '2001:db8:100::1'], ipFamilies: ['IPv4', 'IPv6'] }),
    slices: [slice('web', [{ name: '', port: 8080 }], [ep('198.18.1.1')], { name: 'web-4' }), slice('web', [{ name: '', port: 8080 }], [ep('2001:db8:1::1')], { name: 'web-6', addressType: 'IPv6' })],
    want: [{ prefix: '198.18.100.1/32', backends: [{ address: '198.18.1.1' }] }, { prefix: '2001:db8:100::1/128', backends: [{ address: '2001:db8:1::1' }] }],
  },
  {
    rule: 'NodePort: the cluster IP VIP carries the node port',
    service: svc('np', { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] }),
    slices: [slice('np', [{ name: '', port: 8080 }], [ep('198.18.1.1')])],
    want: [{ type: 'nodeport', node_port: 30080 }],
  },
  {
    rule: 'LoadBalancer: ingress IPs (ipMode VIP or unset) with the family\'s source ranges, host bits cleared as ParseCIDR does; ipMode Proxy and hostnames not served',
    service: svc(
      'lb',
      { type: 'LoadBalancer', ports: [{ port: 443, nodePort: 30443 }], loadBalancerSourceRanges: ['198.18.50.7/24', ' 2001:db8:50::/48', 'garbage'] },
      { loadBalancer: { ingress: [{ ip: '198.18.200.1' }, { ip: '198.18.200.2', ipMode: 'VIP' }, { ip: '198.18.200.3', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }] } },
    ),
    slices: [slice('lb', [{ name: '', port: 8443 }], [ep('198.18.1.1')])],
    want: [
      { prefix: '198.18.100.1/32', type: 'nodeport', node_port: 30443 },
      { prefix: '198.18.200.1/32', type: 'loadbalancer', source_ranges: ['198.18.50.0/24'] },
      { prefix: '198.18.200.2/32', type: 'loadbalancer' },
    ],
    note: /ipMode Proxy/,
  },
  {
    rule: 'externalIPs: a VIP each, of the family',
    service: svc('x', { externalIPs: ['198.18.60.1', '2001:db8:60::1'] }),
    slices: [slice('x', [{ name: '', port: 8080 }], [ep('198.18.1.1')])],
    want: [{ type: 'clusterip' }, { prefix: '198.18.60.1/32', type: 'externalip' }],
  },
  {
    rule: 'ExternalPolicyLocal: externalTrafficPolicy Local on the node port and external VIPs, not the cluster IP; healthCheckNodePort once per service',
    service: svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 31000, ports: [{ name: 'a', port: 80, nodePort: 30080 }, { name: 'b', port: 81, nodePort: 30081 }] }, { loadBalancer: { ingress: [{ ip: '198.18.200.1' }] } }),
    slices: [slice('lb', [{ name: 'a', port: 8080 }, { name: 'b', port: 8081 }], [ep('198.18.1.1', { nodeName: 'node-a' }), ep('198.18.1.2', { nodeName: 'node-b' })])],
    want: [
      { prefix: '198.18.100.1/32', port: 80, external_traffic_policy: 'local', health_check_node_port: 31000 },
      { prefix: '198.18.200.1/32', port: 80, external_traffic_policy: 'local', health_check_node_port: undefined },
      { prefix: '198.18.100.1/32', port: 81, health_check_node_port: undefined },
      { prefix: '198.18.200.1/32', port: 81 },
    ],
    backends: ['198.18.1.1,local', '198.18.1.2'],
  },
  {
    rule: 'ExternallyAccessible: externalTrafficPolicy Local on a plain ClusterIP service means nothing',
    service: svc('c', { externalTrafficPolicy: 'Local' }),
    slices: [slice('c', [{ name: '', port: 8080 }], [ep('198.18.1.1')])],
    want: [{ type: 'clusterip', external_traffic_policy: undefined }],
  },
  {
    rule: 'InternalPolicyLocal: internalTrafficPolicy Local on the cluster IP; only local endpoints are used (no cluster set)',
    service: svc('c', { internalTrafficPolicy: 'Local' }),
    slices: [slice('c', [{ name: '', port: 8080 }], [ep('198.18.1.1', { nodeName: 'node-a' }), ep('198.18.1.2', { nodeName: 'node-b' })])],
    want: [{ internal_traffic_policy: 'local' }],
    backends: ['198.18.1.1,local'],
  },
  {
    rule: 'CategorizeEndpoints: local set falls back to local serving-terminating endpoints',
    service: svc('c', { internalTrafficPolicy: 'Local' }),
    slices: [slice('c', [{ name: '', port: 8080 }], [ep('198.18.1.1', { nodeName: 'node-a', conditions: { ready: false, serving: true, terminating: true } }), ep('198.18.1.2', { nodeName: 'node-b' })])],
    want: [{ internal_traffic_policy: 'local' }],
    backends: ['198.18.1.1,local,terminating'],
  },
  {
    rule: 'topology hints (zone): used when every ready endpoint has hints and one names this zone',
    service: svc('h'),
    slices: [slice('h', [{ name: '', port: 8080 }], [ep('198.18.1.1', { hints: { forZones: [{ name: 'zone-1' }] } }), ep('198.18.1.2', { hints: { forZones: [{ name: 'zone-2' }] } })])],
    want: [{}],
    backends: ['198.18.1.1'],
  },
  {
    rule: 'topology hints: ignored when one ready endpoint has none',
    service: svc('h'),
    slices: [slice('h', [{ name: '', port: 8080 }], [ep('198.18.1.1', { hints: { forZones: [{ name: 'zone-1' }] } }), ep('198.18.1.2')])],
    want: [{}],
    backends: ['198.18.1.1', '198.18.1.2'],
  },
  {
    rule: 'topology hints: ignored when none names this zone, and when the node has no zone label',
    service: svc('h'),
    slices: [slice('h', [{ name: '', port: 8080 }], [ep('198.18.1.1', { hints: { forZones: [{ name: 'zone-2' }] } }), ep('198.18.1.2', { hints: { forZones: [{ name: 'zone-3' }] } })])],
    want: [{}],
    backends: ['198.18.1.1', '198.18.1.2'],
  },
  {
    rule: 'topology hints (forNodes, PreferSameTrafficDistribution): node hints win over zone hints',
    service: svc('h'),
    slices: [
      slice('h', [{ name: '', port: 8080 }], [
        ep('198.18.1.1', { hints: { forZones: [{ name: 'zone-1' }], forNodes: [{ name: 'node-b' }] } }),
        ep('198.18.1.2', { hints: { forZones: [{ name: 'zone-1' }], forNodes: [{ name: 'node-a' }] } }),
      ]),
    ],
    want: [{}],
    backends: ['198.18.1.2'],
  },
  {
    rule: 'CategorizeEndpoints: with no ready endpoint the cluster set is the serving-terminating ones (topology never applies then)',
    service: svc('h'),
    slices: [slice('h', [{ name: '', port: 8080 }], [ep('198.18.1.1', { conditions: { ready: false, serving: true, terminating: true }, hints: { forZones: [{ name: 'zone-2' }] } })])],
    want: [{}],
    backends: ['198.18.1.1,terminating'],
  },
  {
    rule: 'no endpoints: the VIP exists with no backend (the data plane rejects, as kube-proxy does)',
    service: svc('empty', { ports: [{ port: 80, targetPort: 9090 }] }),
    want: [{ target_port: 9090, backends: [] }],
  },
  {
    rule: 'sessionAffinity ClientIP with its timeout',
    service: svc('a', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } }),
    want: [{ session_affinity: 'ClientIP', session_affinity_timeout: 600 }],
  },
  {
    rule: 'SCTP is not served (a note names the port)',
    service: svc('s', { ports: [{ name: 'sctp', port: 9999, protocol: 'SCTP' }] }),
    want: [],
    note: /SCTP/,
  },
];

for (const c of cases) {
  t.test(c.rule, async (t) => {
    const out = translateService(c.service, c.slices ?? [], c.node ?? NODE);
    t.equal(out.vips.length, c.want.length, `${c.want.length} VIP(s): ${out.vips.map((v) => `${v.prefix} ${v.protocol} ${v.port}`).join(', ')}`);
    c.want.forEach((w, i) => {
      for (const [k, v] of Object.entries(w)) {
        if (v === undefined) t.notOk(k in (out.vips[i] ?? {}), `vip ${i}: no ${k}`);
        else t.match((out.vips[i] as unknown as Record<string, unknown>)?.[k], v, `vip ${i}: ${k}`);
      }
    });
    if (c.backends) t.same(be(out.vips[0]), c.backends, 'backends');
    if (c.note) t.match(out.notes.join('\n'), c.note, 'noted');
    // The store keeps trimmed objects: they must translate the same.
    t.same(translateService(trimService(c.service), (c.slices ?? []).map(trimSlice), c.node ?? NODE), out, 'the trimmed objects translate the same');
  });
}

t.test('trimming drops what kube-proxy never reads', async (t) => {
  const s = svc('web');
  s.metadata = { ...s.metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(1000) }, managedFields: [{ manager: 'kubectl' }] } as never;
  const kept = trimService(s);
  t.same(Object.keys(kept.metadata!).sort(), ['creationTimestamp', 'name', 'namespace']);
  const sl = slice('web', [{ name: '', port: 8080 }], [ep('198.18.1.1', { nodeName: 'n', targetRef: { kind: 'Pod', name: 'web-1' }, zone: 'z' } as never)]);
  const tk = trimSlice(sl);
  t.same(tk.metadata!.labels, { 'kubernetes.io/service-name': 'web' }, 'only the service-name label');
  t.same(tk.endpoints, [{ addresses: ['198.18.1.1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n' }]);
  const n = trimNode({ metadata: { name: 'n', labels: { 'topology.kubernetes.io/zone': 'z' }, annotations: { a: 'b' } }, spec: { taints: [{ key: 'k' }] }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } } as never);
  t.same(n, { metadata: { name: 'n', labels: { 'topology.kubernetes.io/zone': 'z' } }, spec: { taints: [{ key: 'k' }] }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } });
});

t.test('trimmed endpoints share hidden classes (80k endpoints, one shape each, cost 13 MB)', async (t) => {
  // %HaveSameMap needs V8's natives syntax: a child process of its own.
  const { execFileSync } = await import('node:child_process');
  const { pathToFileURL } = await import('node:url');
  const types = pathToFileURL(new URL('../../dist/kube/types.js', import.meta.url).pathname).href;
  // Slices as the API's JSON gives them, enough of them for V8's inline caches to settle.
  const code = `const { trimSlice } = await import(${JSON.stringify(types)});
const ep = (i, j) => ({ addresses: ['198.18.' + (i % 250) + '.' + j], conditions: { ready: true, serving: true, terminating: false }, nodeName: j ? 'other' : 'n', ...(j === 3 ? { zone: 'z', targetRef: {} } : {}) });
const raw = JSON.parse(JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ metadata: { name: 's' + i }, addressType: 'IPv4', endpoints: Array.from({ length: 8 }, (_, j) => ep(i, j)) }))));
const eps = raw.map(trimSlice).flatMap((s) => s.endpoints);
console.log(JSON.stringify(eps.filter((e) => eval('%HaveSameMap(eps[0], e)')).length));`;
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', code], { encoding: 'utf8' });
  t.equal(Number(out), 4000, 'all 4,000 endpoints have the first one\'s hidden class');
});

t.test('one target port per VIP: the port most endpoints have, the others noted', async (t) => {
  const out = translateService(svc('w'), [slice('w', [{ name: '', port: 8080 }], [ep('198.18.1.1'), ep('198.18.1.2')], { name: 'a' }), slice('w', [{ name: '', port: 9090 }], [ep('198.18.1.3')], { name: 'b' })], NODE);
  t.equal(out.vips[0].target_port, 8080);
  t.same(be(out.vips[0]), ['198.18.1.1', '198.18.1.2']);
  t.match(out.notes.join('\n'), /1 endpoint\(s\) on another port than 8080/);
});

t.test('clusterIPs pairs with ipFamilies; a mismatched pair is left out', async (t) => {
  t.same([...clusterIPsByFamily(svc('d', { clusterIPs: ['2001:db8::1', '198.18.100.9'], ipFamilies: ['IPv6', 'IPv4'] }))], [[6, '2001:db8::1'], [4, '198.18.100.9']]);
  t.same([...clusterIPsByFamily(svc('d', { clusterIP: '198.18.100.9', clusterIPs: ['198.18.100.9'], ipFamilies: ['IPv6'] }))], []);
});

t.test('sourceRange: ParseCIDR semantics', async (t) => {
  t.equal(sourceRange('198.18.5.9/16', 4), '198.18.0.0/16');
  t.equal(sourceRange('2001:db8::1/32', 6), '2001:db8::/32');
  t.equal(sourceRange('198.18.5.9/16', 6), undefined);
  t.equal(sourceRange('198.18.5.9', 4), undefined, 'a bare address is not a CIDR');
  t.equal(sourceRange('198.18.5.9/33', 4), undefined);
});

t.test('topologyMode looks at ready endpoints only', async (t) => {
  const eps = endpointsOf([slice('h', [{ name: '', port: 1 }], [ep('198.18.1.1', { hints: { forZones: [{ name: 'zone-1' }] } }), ep('198.18.1.2', { conditions: { ready: false } })])], { port: 80 }, 4, 'node-a');
  t.equal(topologyMode(eps, NODE), 'zone');
  t.equal(topologyMode(eps, { name: 'node-a' }), undefined, 'no zone label: no filtering');
});
