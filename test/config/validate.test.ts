import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { DEFAULT_TIMEOUTS } from '../../src/config/timeouts.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, parseConfigText, loadConfigFile } from '../../src/config/validate.js';
import { appliedOf, changedVips } from '../../src/daemon/incremental.js';
import { configSchema } from '../../src/config/schema.js';
import { KpError } from '../../src/errors.js';
import { localPortRange } from '../../src/sys/host.js';

/** This machine's ephemeral ports, which masquerade ports must avoid. */
const EPH = localPortRange() ?? [32768, 60999];

const example = () => ({
  conf: { buckets: 131072, timeout: 30, timeouts: { tcp_established: 86400, tcp_close_wait: 3600 } } as { buckets: number; timeout: number; timeouts: Record<string, number> },
  interfaces: [{ name: 'eth0', mode: 'auto', redirect: true }],
  vips: [
    {
      prefix: '198.18.100.1/32',
      protocol: 'tcp',
      port: 80,
      target_port: 8080,
      new_len: 1021,
      backends: ['198.18.1.2', { address: '198.18.1.3', weight: 2 }],
    },
  ],
});

/** The `details` of the KP_ERR_CONFIG that parseConfig throws for `doc`. */
function problems(t: Test, doc: unknown): string[] {
  try {
    parseConfig(doc);
  } catch (e) {
    t.type(e, KpError);
    t.equal((e as KpError).code, 'KP_ERR_CONFIG');
    const details = (e as KpError).details ?? [];
    // The message counts them; the CLI prints each detail once after it.
    t.match((e as KpError).message, new RegExp(`^invalid config, ${details.length} problems?; nothing was applied:$`));
    return details;
  }
  t.fail('expected KP_ERR_CONFIG');
  return [];
}

t.test("README's config example is valid, as printed there", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Config'));
  const json = /```json\n([\s\S]*?)```/.exec(section)![1];
  const c = parseConfig(JSON.parse(json));
  t.same(c.vips.map((v) => [v.type, v.node_port, v.source_ranges]), [['clusterip', 0, []], ['nodeport', 30964, []], ['loadbalancer', 0, ['198.18.0.0/24']], ['clusterip', 0, []]]);
  t.equal(c.conf.hash_seed, 3735928559);
  t.same([c.conf.masquerade_address6, c.vips[3].family, c.vips[3].backends.length], ['2001:db8::1', 6, 2], 'and its IPv6 parts');
});

t.test("the shipped example config (deploy/config.example.json) is valid", async (t) => {
  const c = loadConfigFile(new URL('../../deploy/config.example.json', import.meta.url).pathname);
  t.equal(c.vips.length, 2);
  t.same(c.conf.masquerade_ports, [1024, 29999]);
});

t.test('the README example is accepted, as given', async (t) => {
  t.same(parseConfig(example()), {
    conf: { buckets: 131072, timeouts: { ...DEFAULT_TIMEOUTS }, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999] },
    interfaces: [{ name: 'eth0', mode: 'auto', redirect: true }],
    vips: [
      {
        prefix: '198.18.100.1/32',
        family: 4,
        protocol: 'tcp',
        port: 80,
        target_port: 8080,
        new_len: 1021,
        node_port: 0,
        type: 'clusterip',
        source_ranges: [],
        backends: [
          { address: '198.18.1.2', weight: 1 },
          { address: '198.18.1.3', weight: 2 },
        ],
      },
    ],
  });
});

t.test('defaults are filled', async (t) => {
  t.same(parseConfig({}), { conf: { buckets: 131072, timeouts: { ...DEFAULT_TIMEOUTS }, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999] }, interfaces: [], vips: [] });
  const c = parseConfig({
    conf: { timeout: 7 },
    interfaces: [{ name: 'veth-node0' }],
    vips: [{ prefix: '198.18.100.1', port: 53 }, { prefix: '2001:db8:100::1', port: 443, backends: ['2001:db8:1::2'] }],
  });
  t.same(c.conf, { buckets: 131072, timeouts: { ...DEFAULT_TIMEOUTS, udp: 7 }, nodeport_range: [30000, 32767], nodeport_addresses: [], masquerade_ports: [1024, 29999] }, 'timeout is the UDP timeout');
  t.same(parseConfig({ conf: { timeouts: { tcp_established: 3600, tcp_close: 5 } } }).conf.timeouts, { ...DEFAULT_TIMEOUTS, tcp_established: 3600, tcp_close: 5 });
  t.same(c.interfaces, [{ name: 'veth-node0', mode: 'auto', redirect: false }]);
  t.same(c.vips[0], { prefix: '198.18.100.1/32', family: 4, protocol: 'tcp', port: 53, target_port: 53, node_port: 0, type: 'clusterip', source_ranges: [], backends: [] });
  t.same(c.vips[1].backends, [{ address: '2001:db8:1::2', weight: 1 }]);
  t.equal(c.vips[1].prefix, '2001:db8:100::1/128');
  t.equal(c.vips[1].family, 6);
});

t.test('the input is not modified', async (t) => {
  const doc = { vips: [{ prefix: '2001:DB8::1', port: 80, backends: ['2001:DB8::2'] }] };
  const copy = JSON.parse(JSON.stringify(doc));
  parseConfig(doc);
  t.same(doc, copy);
});

t.test('types: node_port and source_ranges must fit the type; ranges are checked and canonical', async (t) => {
  const lb = { prefix: '198.18.200.1/32', port: 443, type: 'loadbalancer', node_port: 30443, source_ranges: ['198.18.9.0/24', '198.18.0.0/28', '198.18.9.0/24'] };
  t.same(problems(t, { vips: [lb] }), ['/vips/0/source_ranges/2: duplicate range 198.18.9.0/24 (first at /vips/0/source_ranges/0)']);
  lb.source_ranges.pop();
  t.match(parseConfig({ vips: [lb] }).vips[0], { type: 'loadbalancer', node_port: 30443, source_ranges: ['198.18.0.0/28', '198.18.9.0/24'] });
  t.equal(parseConfig({ vips: [{ prefix: '198.18.100.1/32', port: 80, node_port: 30080 }] }).vips[0].type, 'nodeport', 'a node port alone makes it a nodeport VIP');
  t.same(problems(t, { vips: [
    { prefix: '198.18.100.1/32', port: 80, source_ranges: ['198.18.0.0/24'] },
    { prefix: '198.18.100.2/32', port: 80, type: 'externalip', node_port: 30081 },
    { prefix: '198.18.100.3/32', port: 80, type: 'nodeport' },
    { prefix: '198.18.100.4/32', port: 80, type: 'loadbalancer', source_ranges: ['2001:db8::/32', '198.18.0.1/24'] },
    { prefix: '198.18.100.5/32', port: 80, type: 'service' },
  ] }), [
    '/vips/0/source_ranges: only a loadbalancer VIP has source ranges (this one is clusterip)',
    '/vips/1/node_port: externalip VIPs have no node port (type nodeport or loadbalancer)',
    '/vips/2/type: nodeport needs /vips/2/node_port',
    '/vips/3/source_ranges/0: IPv6 range 2001:db8::/32 for an IPv4 VIP (same family required)',
    '/vips/3/source_ranges/1: host bits are set after /24 (the network is 198.18.0.0/24)',
    '/vips/4/type: must be one of "clusterip", "nodeport", "loadbalancer", "externalip", got "service"',
  ]);
});

t.test('traffic policies and local backends', async (t) => {
  const c = parseConfig({ vips: [{ prefix: '198.18.100.1/32', port: 80, node_port: 30080, external_traffic_policy: 'local', internal_traffic_policy: 'cluster', backends: [{ address: '198.18.1.2', local: true }, '198.18.1.3'] }] });
  t.match(c.vips[0], { external_traffic_policy: 'local', backends: [{ address: '198.18.1.2', local: true }, { address: '198.18.1.3' }] });
  t.notOk('internal_traffic_policy' in c.vips[0], 'cluster is the default and left out');
  t.notOk('local' in c.vips[0].backends[1]);
  t.same(problems(t, { vips: [
    { prefix: '198.18.100.1/32', port: 80, external_traffic_policy: 'local' },
    { prefix: '198.18.100.2/32', port: 80, type: 'loadbalancer', internal_traffic_policy: 'local' },
    { prefix: '198.18.100.3/32', port: 80, external_traffic_policy: 'nearby', backends: [{ address: '198.18.1.2', local: 'yes' }] },
  ] }), [
    '/vips/0/external_traffic_policy: a clusterip VIP has no external traffic (type nodeport, loadbalancer or externalip)',
    '/vips/1/internal_traffic_policy: applies to cluster IPs, and this VIP is a loadbalancer',
    '/vips/2/backends/0/local: must be boolean, got "yes"',
    '/vips/2/external_traffic_policy: must be one of "cluster", "local", got "nearby"',
  ]);
});

t.test('node ports: one per protocol; the same number for TCP and UDP is fine', async (t) => {
  const doc = {
    vips: [
      { prefix: '198.18.100.1/32', port: 80, node_port: 30080 },
      { prefix: '198.18.100.2/32', port: 80, node_port: 30080 },
      { prefix: '198.18.100.3/32', protocol: 'udp', port: 53, node_port: 30080 },
    ],
  };
  t.same(problems(t, doc), ['/vips/1/node_port: node port 30080 for tcp is already /vips/0/node_port\'s']);
  doc.vips.splice(1, 1);
  t.same(parseConfig(doc).vips.map((v) => v.node_port), [30080, 30080]);
  t.equal(parseConfig({ vips: [{ prefix: '198.18.100.1/32', port: 80 }] }).vips[0].node_port, 0, 'none by default');
});

t.test('each kind of bad field is reported with its JSON path', async (t) => {
  const cases: [string, (d: ReturnType<typeof example>) => void, string][] = [
    ['buckets too small', (d) => (d.conf.buckets = 512), '/conf/buckets: must be >= 1024, got 512'],
    ['buckets too big', (d) => (d.conf.buckets = 33554432), '/conf/buckets: must be <= 16777216, got 33554432'],
    ['buckets not a power of two', (d) => (d.conf.buckets = 5000), '/conf/buckets: must be a power of two, got 5000'],
    ['buckets not an integer', (d) => (d.conf.buckets = 1024.5), '/conf/buckets: must be integer, got 1024.5'],
    ['timeout 0', (d) => (d.conf.timeout = 0), '/conf/timeout: must be >= 1, got 0'],
    ['timeout too long', (d) => (d.conf.timeout = 2592001), '/conf/timeout: must be <= 2592000, got 2592001'],
    ['a state timeout 0', (d) => (d.conf.timeouts.tcp_established = 0), '/conf/timeouts/tcp_established: must be >= 1, got 0'],
    ['an unknown state', (d) => (d.conf.timeouts.tcp_listen = 5), '/conf/timeouts/tcp_listen: unknown property'],
    ['timeout and timeouts.udp disagree', (d) => (d.conf.timeouts.udp = 31), '/conf/timeout: is the UDP timeout and contradicts /conf/timeouts/udp (30 vs 31)'],
    ['timeout a string', (d) => ((d.conf as any).timeout = '40'), '/conf/timeout: must be integer, got "40"'],
    ['unknown conf key', (d) => ((d.conf as any).bukets = 1), '/conf/bukets: unknown property'],
    ['node_port below the range', (d) => ((d.vips[0] as any).node_port = 29999), '/vips/0/node_port: must be within the node port range 30000-32767, got 29999'],
    ['node_port above the range', (d) => ((d.vips[0] as any).node_port = 32768), '/vips/0/node_port: must be within the node port range 30000-32767, got 32768'],
    ['node_port outside a configured range', (d) => (((d.vips[0] as any).node_port = 30080), ((d.conf as any).nodeport_range = '31000-31999')), '/vips/0/node_port: must be within the node port range 31000-31999, got 30080'],
    ['nodeport_range backwards', (d) => ((d.conf as any).nodeport_range = '32000-31000'), '/conf/nodeport_range: must be MIN-MAX with 1 <= MIN <= MAX <= 65535, got "32000-31000"'],
    ['nodeport_range not a range', (d) => ((d.conf as any).nodeport_range = '30000'), '/conf/nodeport_range: must be MIN-MAX, e.g. 30000-32767, got "30000"'],
    ['masquerade_address6 an IPv4 address', (d) => ((d.conf as any).masquerade_address6 = '198.18.0.1'), "/conf/masquerade_address6: expected an IPv6 address or none, got the IPv4 address '198.18.0.1' (IPv4: masquerade_address)"],
    ['masquerade_address an IPv6 address', (d) => ((d.conf as any).masquerade_address = '2001:db8::1'), "/conf/masquerade_address: expected an IPv4 address or none, got the IPv6 address '2001:db8::1' (IPv6: masquerade_address6)"],
    ['encap nat6 (NAT46) with an IPv4 backend', (d) => (((d.vips[0] as any).encap = 'nat6'), (d.vips[0].backends[0] = '2001:db8::2')), "/vips/0/backends/1/address: IPv4 backend 198.18.1.3, and this VIP's backends are IPv6 (/vips/0/encap nat6): one family per VIP"],
    ['nat46_prefix not a /96', (d) => ((d.conf as any).nat46_prefix = '64:ff9b::/64'), "/conf/nat46_prefix: expected an IPv6 /96 prefix (RFC 6052, e.g. 64:ff9b::/96), got '64:ff9b::/64'"],
    ['encap of the other family', (d) => ((d.vips[0] as any).encap = 'nat66'), "/vips/0/encap: nat66 is an IPv6 VIP's NAT, and this VIP is IPv4"],
    ['masquerade_address not an address', (d) => ((d.conf as any).masquerade_address = 'node1'), "/conf/masquerade_address: expected an IPv4 address or none: 'node1' is not an IPv4 (198.18.0.1) or IPv6 (2001:db8::1) address"],
    ['masquerade_ports in the node port range', (d) => ((d.conf as any).masquerade_ports = '30500-30600'), '/conf/masquerade_ports: 30500-30600 overlaps the node port range 30000-32767'],
    ['masquerade_ports in the ephemeral range', (d) => ((d.conf as any).masquerade_ports = `${EPH[0] + 100}-${EPH[0] + 200}`), `/conf/masquerade_ports: ${EPH[0] + 100}-${EPH[0] + 200} overlaps the node's ephemeral ports ${EPH.join('-')} (net.ipv4.ip_local_port_range), which its own connections use`],
    ['masquerade_ports not a range', (d) => ((d.conf as any).masquerade_ports = '61000'), '/conf/masquerade_ports: must be MIN-MAX, e.g. 30000-32767, got "61000"'],
    ['hash_seed negative', (d) => ((d.conf as any).hash_seed = -1), '/conf/hash_seed: must be >= 0, got -1'],
    ['hash_seed over 32 bits', (d) => ((d.conf as any).hash_seed = 4294967296), '/conf/hash_seed: must be <= 4294967295, got 4294967296'],
    ['unknown top-level key', (d) => ((d as any).service = []), '/service: unknown property'],
    ['interface name missing', (d) => delete (d.interfaces[0] as any).name, '/interfaces/0/name: is required'],
    ['interface name empty', (d) => (d.interfaces[0].name = ''), '/interfaces/0/name: must NOT have fewer than 1 characters, got ""'],
    ['interface name too long', (d) => (d.interfaces[0].name = 'a234567890123456'), '/interfaces/0/name: must NOT have more than 15 characters, got "a234567890123456"'],
    ['interface name too many bytes', (d) => (d.interfaces[0].name = 'ééééééééé'), '/interfaces/0/name: must be at most 15 bytes, got 18'],
    ['interface name with a slash', (d) => (d.interfaces[0].name = 'eth/0'), `/interfaces/0/name: must not contain '/', ':' or whitespace, got "eth/0"`],
    ['interface name with a space', (d) => (d.interfaces[0].name = 'eth 0'), `/interfaces/0/name: must not contain '/', ':' or whitespace, got "eth 0"`],
    ['interface name ..', (d) => (d.interfaces[0].name = '..'), `/interfaces/0/name: '..' is not a valid interface name`],
    ['redirect on generic', (d) => ((d.interfaces[0].mode = 'generic'), (d.interfaces[0].redirect = true)), '/interfaces/0/redirect: not with mode generic (a redirected skb-mode frame keeps CHECKSUM_PARTIAL with a finished checksum); use mode native or auto, or redirect false'],
    ['bad mode', (d) => (d.interfaces[0].mode = 'offload'), '/interfaces/0/mode: must be one of "native", "generic", "auto", got "offload"'],
    ['redirect not boolean', (d) => ((d.interfaces[0] as any).redirect = 'yes'), '/interfaces/0/redirect: must be boolean, got "yes"'],
    ['interfaces not an array', (d) => ((d as any).interfaces = { eth0: {} }), '/interfaces: must be array, got {"eth0":{}}'],
    ['prefix missing', (d) => delete (d.vips[0] as any).prefix, '/vips/0/prefix: is required'],
    ['port missing', (d) => delete (d.vips[0] as any).port, '/vips/0/port: is required'],
    ['prefix not an address', (d) => (d.vips[0].prefix = 'svc.local'), `/vips/0/prefix: 'svc.local' is not an IPv4 (198.18.0.1) or IPv6 (2001:db8::1) address`],
    ['prefix with host bits', (d) => (d.vips[0].prefix = '198.18.100.1/24'), '/vips/0/prefix: host bits are set after /24 (the network is 198.18.100.0/24)'],
    ['prefix length too long', (d) => (d.vips[0].prefix = '198.18.100.1/40'), `/vips/0/prefix: prefix length '40' must be an integer from 0 to 32`],
    ['bad protocol', (d) => (d.vips[0].protocol = 'sctp'), '/vips/0/protocol: must be one of "tcp", "udp", got "sctp"'],
    ['port 0', (d) => (d.vips[0].port = 0), '/vips/0/port: must be >= 1, got 0'],
    ['port too big', (d) => (d.vips[0].port = 65536), '/vips/0/port: must be <= 65535, got 65536'],
    ['target_port 0', (d) => (d.vips[0].target_port = 0), '/vips/0/target_port: must be >= 1, got 0'],
    ['new_len not prime', (d) => (d.vips[0].new_len = 1000), '/vips/0/new_len: must be a prime number, got 1000'],
    ['new_len too small', (d) => (d.vips[0].new_len = 5), '/vips/0/new_len: must be >= 7, got 5'],
    ['new_len too big', (d) => (d.vips[0].new_len = 131101), '/vips/0/new_len: must be <= 131071, got 131101'],
    ['unknown VIP key', (d) => ((d.vips[0] as any).targetPort = 1), '/vips/0/targetPort: unknown property'],
    ['backend not an address', (d) => (d.vips[0].backends[0] = '198.18.1'), `/vips/0/backends/0: '198.18.1' is not an IPv4 (198.18.0.1) or IPv6 (2001:db8::1) address`],
    ['backend object with a bad address', (d) => (d.vips[0].backends[1] = { address: 'x', weight: 1 }), `/vips/0/backends/1/address: 'x' is not an IPv4`],
    ['backend a number', (d) => ((d.vips[0].backends as unknown[])[0] = 5), '/vips/0/backends/0: must be string or object, got 5'],
    ['backend weight 0', (d) => (d.vips[0].backends[1] = { address: '198.18.1.3', weight: 0 }), '/vips/0/backends/1/weight: must be >= 1, got 0'],
    ['backend weight too big', (d) => (d.vips[0].backends[1] = { address: '198.18.1.3', weight: 65536 }), '/vips/0/backends/1/weight: must be <= 65535, got 65536'],
    ['backend address missing', (d) => ((d.vips[0].backends as unknown[])[1] = { weight: 2 }), '/vips/0/backends/1/address: is required'],
    ['unknown backend key', (d) => ((d.vips[0].backends as unknown[])[1] = { address: '198.18.1.3', port: 1 }), '/vips/0/backends/1/port: unknown property'],
    ['backend with a prefix', (d) => (d.vips[0].backends[0] = '198.18.1.2/32'), `/vips/0/backends/0: '198.18.1.2/32' is not`],
    ['backends of both families', (d) => (d.vips[0].backends[0] = '2001:db8::2'), "/vips/0/backends/1/address: IPv4 backend 198.18.1.3, and this VIP's backends are IPv6 (/vips/0/backends/0): one family per VIP"],
    ['duplicate backend', (d) => (d.vips[0].backends[1] = { address: '::ffff:198.18.1.2', weight: 2 }), '/vips/0/backends/1/address: duplicate backend 198.18.1.2 (first at /vips/0/backends/0)'],
    ['duplicate interface', (d) => d.interfaces.push({ name: 'eth0', mode: 'native', redirect: false }), '/interfaces/1/name: duplicate interface eth0 (first at /interfaces/0/name)'],
    ['duplicate VIP', (d) => d.vips.push({ ...d.vips[0], prefix: '198.18.100.1', target_port: 9090 }), '/vips/1: duplicate VIP 198.18.100.1/32 tcp port 80 (first at /vips/0)'],
  ];
  for (const [name, mutate, want] of cases) {
    const doc = example();
    mutate(doc);
    const got = problems(t, doc);
    t.equal(got.length, 1, `${name}: exactly one problem (${got.join(' | ')})`);
    t.ok(got[0]?.startsWith(want), `${name}: ${got[0]}`);
  }
});

t.test('the same VIP address on another protocol or port is not a duplicate', async (t) => {
  const doc = example();
  doc.vips.push({ ...doc.vips[0], protocol: 'udp' }, { ...doc.vips[0], port: 81 });
  t.equal(parseConfig(doc).vips.length, 3);
});

t.test('every problem is listed at once, in document order', async (t) => {
  const got = problems(t, {
    conf: { buckets: 3000, timeout: -1 },
    interfaces: [{ name: 'eth0', mode: 'fast' }, { name: 'eth0' }],
    vips: [
      { prefix: '198.18.100.1/24', protocol: 'icmp', port: 80, new_len: 1000, backends: ['2001:db8::1', '198.18.1.1', '198.18.1.1'] },
      { prefix: '198.18.100.0/24', port: 80 },
      { prefix: '198.18.100.0/24', port: 80, target_port: 70000 },
    ],
    bogus: 1,
  });
  t.same(got, [
    '/bogus: unknown property',
    '/conf/buckets: must be a power of two, got 3000',
    '/conf/timeout: must be >= 1, got -1',
    '/interfaces/0/mode: must be one of "native", "generic", "auto", got "fast"',
    '/interfaces/1/name: duplicate interface eth0 (first at /interfaces/0/name)',
    "/vips/0/backends/1: IPv4 backend 198.18.1.1, and this VIP's backends are IPv6 (/vips/0/backends/0): one family per VIP",
    "/vips/0/backends/2: IPv4 backend 198.18.1.1, and this VIP's backends are IPv6 (/vips/0/backends/0): one family per VIP",
    '/vips/0/backends/2: duplicate backend 198.18.1.1 (first at /vips/0/backends/1)',
    '/vips/0/new_len: must be a prime number, got 1000',
    '/vips/0/prefix: host bits are set after /24 (the network is 198.18.100.0/24)',
    '/vips/0/protocol: must be one of "tcp", "udp", got "icmp"',
    '/vips/2: duplicate VIP 198.18.100.0/24 tcp port 80 (first at /vips/1)',
    '/vips/2/target_port: must be <= 65535, got 70000',
  ]);
});

t.test('non-object documents', async (t) => {
  t.same(problems(t, 5), ['/: must be object, got 5']);
  t.same(problems(t, null), ['/: must be object, got null']);
  t.same(problems(t, []), ['/: must be object, got []']);
  t.same(problems(t, { vips: [7] }), ['/vips/0: must be object, got 7']);
});

t.test('IPv6 VIPs with IPv6 backends', async (t) => {
  const c = parseConfig({ vips: [{ prefix: '2001:DB8:100::/48', protocol: 'udp', port: 53, backends: ['2001:db8:1:0::2', { address: '2001:db8:1::3', weight: 3 }] }] });
  t.same(c.vips[0].backends, [
    { address: '2001:db8:1::2', weight: 1 },
    { address: '2001:db8:1::3', weight: 3 },
  ]);
  t.equal(c.vips[0].prefix, '2001:db8:100::/48');
});

t.test('backends of the other family: NAT46 and NAT64, from the backends or named by encap', async (t) => {
  const c = parseConfig({
    conf: { nat46_prefix: '2001:DB8:FF46::/96' },
    vips: [
      { prefix: '2001:db8:100::/48', port: 53, backends: ['198.18.1.2'] },
      { prefix: '198.18.100.1', port: 80, backends: ['2001:db8:1::2'] },
      { prefix: '2004::/16', encap: 'nat4', port: 6306, target_port: 6307, node_port: 30966, backends: ['198.18.1.3'] },
      { prefix: '198.18.100.2', encap: 'nat46', port: 80, backends: [] },
      { prefix: '198.18.100.3', encap: 'nat44', port: 80, backends: ['198.18.1.2'] },
    ],
  });
  t.same(c.vips.map((v) => v.encap), ['nat64', 'nat46', 'nat64', 'nat46', undefined]);
  t.equal(c.conf.nat46_prefix, '2001:db8:ff46::/96', 'canonical');
  t.same(problems(t, { conf: { nat46_prefix: '2001:db8:ff46::7/96' } }), ["/conf/nat46_prefix: 2001:db8:ff46::7/96: the last 32 bits of a /96 prefix are the client's IPv4 address, so they must be 0"]);
});

t.test('the schema is a plain JSON document', async (t) => {
  t.same(JSON.parse(JSON.stringify(configSchema)), configSchema);
  t.equal(configSchema.additionalProperties, false);
});

t.test('loadConfigFile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  t.same(loadConfigFile(file('ok.json', JSON.stringify(example(), null, 2))).vips[0].backends[1], { address: '198.18.1.3', weight: 2 });

  const syntax = file('syntax.json', '{\n  "conf": { "timeout": 40, }\n}\n');
  t.throws(() => loadConfigFile(syntax), { code: 'KP_ERR_CONFIG', message: new RegExp(`^${syntax}:2:28: invalid JSON`) });
  const truncated = file('truncated.json', '{\n  "vips": [');
  t.throws(() => loadConfigFile(truncated), { code: 'KP_ERR_CONFIG', message: new RegExp(`^${truncated}:2:12: invalid JSON`) });

  const missing = join(dir, 'missing.json');
  t.throws(() => loadConfigFile(missing), { code: 'KP_ERR_CONFIG', message: `cannot read config file ${missing}: ENOENT` });

  const bad = file('bad.json', JSON.stringify({ conf: { timeout: 0 }, vips: [{ prefix: '198.18.100.1', port: 80, new_len: 9 }] }));
  t.throws(() => loadConfigFile(bad), {
    code: 'KP_ERR_CONFIG',
    message: new RegExp(`^${bad}: invalid config, 2 problems`),
    details: ['/conf/timeout: must be >= 1, got 0', '/vips/0/new_len: must be a prime number, got 9'],
  });
});

t.test('a dual-stack pair sharing a node port passes a reparse that reuses both VIPs (as a daemon reload does)', async (t) => {
  const doc = {
    vips: [
      { prefix: '198.18.100.5', port: 80, node_port: 30090, backends: ['198.18.1.5'] },
      { prefix: '2001:db8:100::5', port: 80, node_port: 30090, backends: ['2001:db8:1::5'] },
    ],
  };
  const first = parseConfigText(JSON.stringify(doc), 'a.json');
  const again = parseConfigText(JSON.stringify(doc), 'a.json', appliedOf(first).built);
  t.same(again.config, first.config);
  const twice = { vips: [...doc.vips, { ...doc.vips[1], prefix: '2001:db8:100::6' }] };
  const err = (() => {
    try {
      parseConfigText(JSON.stringify(twice), 'a.json', appliedOf(first).built);
    } catch (e) {
      return e as KpError;
    }
  })();
  t.same(err?.details, ["/vips/2/node_port: node port 30090 for tcp is already /vips/1/node_port's"], 'two IPv6 VIPs on one node port are still refused');
});

t.test('a reparse that reuses unchanged VIPs gives the same config and still finds what involves other VIPs', async (t) => {
  const doc = {
    conf: { nodeport_range: '30000-32767' },
    vips: [
      { prefix: '198.18.100.1/32', protocol: 'udp', port: 53, backends: ['198.18.1.1'] },
      { prefix: '198.18.100.2', port: 80, node_port: 30080, type: 'nodeport', backends: [{ address: '198.18.1.2', weight: 3 }] },
    ],
  };
  const first = parseConfigText(JSON.stringify(doc), 'a.json');
  const built = appliedOf(first).built;
  const again = parseConfigText(JSON.stringify(doc), 'a.json', built);
  t.same(again.config, first.config, 'equal to a fresh parse');
  t.equal(again.config.vips[1], first.config.vips[1], 'the unchanged VIP is the one built before');
  const changed = { ...doc, vips: [doc.vips[0], { ...doc.vips[1], backends: ['198.18.1.3'] }] };
  t.same(parseConfigText(JSON.stringify(changed), 'a.json', built).config, parseConfigText(JSON.stringify(changed), 'a.json').config, 'a changed VIP is built again');
  // The same texts, now with a copy of the first VIP and a node port outside a narrowed range.
  const clash = { conf: { nodeport_range: '31000-32767' }, vips: [...doc.vips, doc.vips[0], { ...doc.vips[1], prefix: '198.18.100.3' }] };
  const err = (() => {
    try {
      parseConfigText(JSON.stringify(clash), 'a.json', built);
    } catch (e) {
      return e as KpError;
    }
  })();
  t.match(err?.details, [
    '/vips/1/node_port: must be within the node port range 31000-32767, got 30080',
    '/vips/2: duplicate VIP 198.18.100.1/32 udp port 53 (first at /vips/0)',
    '/vips/3/node_port: must be within the node port range 31000-32767, got 30080',
    "/vips/3/node_port: node port 30080 for tcp is already /vips/1/node_port's",
  ]);
});

t.test('changedVips: only the VIPs whose text changed, added or removed; everything when conf changed', async (t) => {
  const v = (i: number, be = '198.18.1.1') => ({ prefix: `198.18.100.${i}/32`, port: 80, backends: [be] });
  const parse = (o: object) => parseConfigText(JSON.stringify(o), 'a.json');
  const a = changedVips(undefined, parse({ vips: [v(1), v(2), v(3)] }));
  t.equal(a.only, undefined, 'nothing applied yet: compare everything');
  const b = changedVips(a.applied, parse({ vips: [v(1), v(2, '198.18.1.9'), v(4)] }));
  t.same(b.only!.map((r) => r.prefix).sort(), ['198.18.100.2/32', '198.18.100.3/32', '198.18.100.4/32']);
  const moved = changedVips(b.applied, parse({ vips: [v(1), v(4), v(2, '198.18.1.9')] }));
  t.same(moved.only!.map((r) => r.prefix).sort(), ['198.18.100.2/32', '198.18.100.4/32'], 'reordered: the moved VIPs are compared (and found equal), the others not');
  t.same(changedVips(moved.applied, parse({ vips: [v(1), v(4), v(2, '198.18.1.9')] })).only, [], 'the same file again: nothing');
  t.equal(changedVips(b.applied, parse({ conf: { buckets: 4096 }, vips: [v(1)] })).only, undefined, 'conf changed: everything');
});
