// A corpus of bad config files as a new user writes them: each must be refused naming where the
// problem is (a JSON path, or line:column for syntax), without a stack trace, and change nothing.
// The CLI (test/cli/args.test.ts) and kpbpf run's reload (test/daemon/run.test.ts) both go through it.

const VIP = { prefix: '198.18.100.10/32', protocol: 'udp', port: 53, target_port: 5353, backends: ['198.18.1.2'] };
const json = (o: unknown) => JSON.stringify(o, null, 2);
const withVip = (patch: Record<string, unknown>) => json({ vips: [{ ...VIP, ...patch }] });

export interface BadConfig {
  name: string;
  /** the file's bytes */
  body: string | Buffer;
  /** what the refusal must say (a path and what was expected) */
  want: RegExp;
}

export const BAD_CONFIGS: BadConfig[] = [
  { name: 'syntax: a missing comma', body: '{\n  "vips": [\n    {"prefix": "198.18.100.10/32" "port": 53}\n  ]\n}\n', want: /:3:\d+: invalid JSON/ },
  { name: 'syntax: a trailing comma', body: '{"vips": [],}\n', want: /:1:\d+: invalid JSON/ },
  { name: 'syntax: a comment', body: '{\n  // services\n  "vips": []\n}\n', want: /:2:\d+: invalid JSON/ },
  { name: 'syntax: cut short', body: '{"vips": [{"prefix": "198.18.100.10/32",', want: /invalid JSON/ },
  { name: 'syntax: single quotes', body: "{'vips': []}", want: /:1:2: invalid JSON/ },
  { name: 'empty file', body: '', want: /invalid JSON/ },
  { name: 'a byte order mark', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"vips": []}')]), want: /byte order mark|BOM/i },
  { name: 'UTF-16', body: Buffer.from('\ufeff{"vips": []}', 'utf16le'), want: /UTF-16/ },
  { name: 'duplicate key at the top', body: '{"vips": [], "vips": []}', want: /\/vips: the key "vips" is given twice/ },
  { name: 'duplicate key in a VIP', body: '{"vips": [{"prefix": "198.18.100.10/32", "port": 53, "port": 54}]}', want: /\/vips\/0\/port: the key "port" is given twice/ },
  { name: 'nested too deep', body: `{"vips": ${'['.repeat(5000)}${']'.repeat(5000)}}`, want: /nested deeper than 32 levels/ },
  { name: 'a huge wrong value', body: json({ vips: [{ ...VIP, port: 'x'.repeat(200_000) }] }), want: /\/vips\/0\/port: must be integer, got "x{10,}\.\.\. \(200,002 characters\)/ },
  { name: 'an array at the top', body: '[]', want: /\/: must be object/ },
  { name: 'vips not an array', body: json({ vips: { svc: VIP } }), want: /\/vips: must be array/ },
  { name: 'unknown top-level key', body: json({ services: [] }), want: /\/services: unknown property/ },
  { name: 'a misspelt VIP key', body: withVip({ targetPort: 5353 }), want: /\/vips\/0\/targetPort: unknown property/ },
  { name: 'port missing', body: json({ vips: [{ prefix: '198.18.100.10/32' }] }), want: /\/vips\/0\/port: is required/ },
  { name: 'port a string', body: withVip({ port: '53' }), want: /\/vips\/0\/port: must be integer, got "53"/ },
  { name: 'port out of range', body: withVip({ port: 70000 }), want: /\/vips\/0\/port: must be <= 65535, got 70000/ },
  { name: 'protocol icmp', body: withVip({ protocol: 'icmp' }), want: /\/vips\/0\/protocol: must be one of "tcp", "udp"/ },
  { name: 'prefix a name', body: withVip({ prefix: 'dns.kube-system' }), want: /\/vips\/0\/prefix: 'dns.kube-system' is not an IPv4/ },
  { name: 'prefix with host bits', body: withVip({ prefix: '198.18.100.10/24' }), want: /\/vips\/0\/prefix: host bits are set after \/24/ },
  { name: 'new_len not prime', body: withVip({ new_len: 1000 }), want: /\/vips\/0\/new_len: must be a prime number, got 1000/ },
  { name: 'new_len too small', body: withVip({ new_len: 3 }), want: /\/vips\/0\/new_len: must be >= 7, got 3/ },
  { name: 'a backend that is no address', body: withVip({ backends: ['198.18.1'] }), want: /\/vips\/0\/backends\/0: '198.18.1' is not an IPv4/ },
  { name: 'a backend with a port', body: withVip({ backends: ['198.18.1.2:5353'] }), want: /\/vips\/0\/backends\/0: '198.18.1.2:5353' is not/ },
  { name: 'backends of both families', body: withVip({ backends: ['198.18.1.2', '2001:db8::2'] }), want: /\/vips\/0\/backends\/1: IPv6 backend 2001:db8::2, and this VIP's backends are IPv4 \(\/vips\/0\/backends\/0\): one family per VIP/ },
  { name: 'a duplicate backend', body: withVip({ backends: ['198.18.1.2', '198.18.1.2'] }), want: /\/vips\/0\/backends\/1: duplicate backend 198.18.1.2/ },
  { name: 'weight 0', body: withVip({ backends: [{ address: '198.18.1.2', weight: 0 }] }), want: /\/vips\/0\/backends\/0\/weight: must be >= 1, got 0/ },
  { name: 'a duplicate VIP', body: json({ vips: [VIP, { ...VIP, target_port: 5354 }] }), want: /\/vips\/1: duplicate VIP 198.18.100.10\/32 udp port 53 \(first at \/vips\/0\)/ },
  { name: 'a node port outside the range', body: withVip({ node_port: 8080 }), want: /\/vips\/0\/node_port: must be within the node port range 30000-32767, got 8080/ },
  { name: 'a node port twice', body: json({ vips: [{ ...VIP, node_port: 30053 }, { ...VIP, prefix: '198.18.100.11/32', node_port: 30053 }] }), want: /\/vips\/1\/node_port: node port 30053 for udp is already \/vips\/0\/node_port's/ },
  { name: 'source ranges on a cluster IP', body: withVip({ source_ranges: ['198.18.0.0/24'] }), want: /\/vips\/0\/source_ranges: only a loadbalancer VIP has source ranges/ },
  { name: 'etp local on a cluster IP', body: withVip({ external_traffic_policy: 'local' }), want: /\/vips\/0\/external_traffic_policy: a clusterip VIP has no external traffic/ },
  { name: 'affinity timeout without affinity', body: withVip({ session_affinity_timeout: 60 }), want: /\/vips\/0\/session_affinity_timeout: applies to session_affinity ClientIP/ },
  { name: 'the seed\'s 2004::/16 with encap nat6 and an IPv4 backend', body: json({ vips: [{ prefix: '2004::/16', encap: 'nat6', port: 6306, target_port: 6307, backends: ['198.18.1.2'] }] }), want: /\/vips\/0\/backends\/0: IPv4 backend 198.18.1.2, and this VIP's backends are IPv6 \(\/vips\/0\/encap nat6\)/ },
  { name: 'NAT64 with masquerade_address none', body: json({ conf: { masquerade_address: 'none' }, vips: [{ prefix: '2001:db8:100::64', port: 80, backends: ['198.18.1.2'] }] }), want: /\/vips\/0\/backends\/0: an IPv6 VIP with IPv4 backends \(NAT64\) comes from conf.masquerade_address, which is none/ },
  { name: 'nat46_prefix not a /96', body: json({ conf: { nat46_prefix: '2001:db8:ff46::/64' }, vips: [] }), want: /\/conf\/nat46_prefix: expected an IPv6 \/96 prefix/ },
  { name: 'an IPv4 masquerade_address6', body: json({ conf: { masquerade_address6: '198.18.0.1' }, vips: [] }), want: /\/conf\/masquerade_address6: expected an IPv6 address or none, got the IPv4 address '198.18.0.1' \(IPv4: masquerade_address\)/ },
  { name: 'NAT46 asked for, with IPv4 backends', body: withVip({ encap: 'nat46' }), want: /\/vips\/0\/backends\/0: IPv4 backend 198.18.1.2, and this VIP's backends are IPv6 \(\/vips\/0\/encap nat46\)/ },
  { name: 'buckets not a power of two', body: json({ conf: { buckets: 100000 }, vips: [] }), want: /\/conf\/buckets: must be a power of two, got 100000/ },
  { name: 'timeout 0', body: json({ conf: { timeout: 0 }, vips: [] }), want: /\/conf\/timeout: must be >= 1, got 0/ },
  { name: 'an unknown timeout', body: json({ conf: { timeouts: { tcp_listen: 5 } }, vips: [] }), want: /\/conf\/timeouts\/tcp_listen: unknown property/ },
  { name: 'masquerade ports in the node port range', body: json({ conf: { masquerade_ports: '30000-30100' }, vips: [] }), want: /\/conf\/masquerade_ports: 30000-30100 overlaps the node port range/ },
  { name: 'redirect on generic XDP', body: json({ interfaces: [{ name: 'lo', mode: 'generic', redirect: true }], vips: [] }), want: /\/interfaces\/0\/redirect: not with mode generic/ },
  { name: 'an interface name with a slash', body: json({ interfaces: [{ name: 'eth/0' }], vips: [] }), want: /\/interfaces\/0\/name: must not contain '\/'/ },
];
