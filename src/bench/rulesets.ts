// Ruleset generators for N services x E endpoints: kube-proxy's iptables and nftables shapes
// and the equivalent kpbpf config. Pure functions; addresses only from 198.18.0.0/15.
import { createHash } from 'node:crypto';

/** VIPs live in 198.19.0.0/17, endpoints in 198.18.128.0/17, clients (the cluster CIDR) in 198.18.0.0/16. */
export const VIP_BASE = ipv4ToInt('198.19.0.0');
export const VIP_SPACE = 1 << 15;
export const EP_BASE = ipv4ToInt('198.18.128.0');
export const EP_SPACE = 1 << 15;
export const CLUSTER_CIDR = '198.18.0.0/16';
export const MASQ_MARK = 0x4000;

export type Proto = 'udp' | 'tcp';

export interface Service {
  name: string; // namespace/name:port, as kube-proxy names a service port
  vip: string;
  proto: Proto;
  port: number;
  targetPort: number;
  endpoints: string[];
  /** a node port too (type NodePort, externalTrafficPolicy Cluster) */
  nodePort?: number;
}

export const NODE_PORT_MIN = 30000;
export const NODE_PORT_MAX = 32767;

/** The services with node ports, as many as the range holds: the last-listed (measured) one gets
 * NODE_PORT_MIN, the ones before it the next ports. */
export function withNodePorts(services: Service[]): Service[] {
  const room = NODE_PORT_MAX - NODE_PORT_MIN + 1;
  return services.map((s, i) => {
    const k = services.length - 1 - i;
    return k < room ? { ...s, nodePort: NODE_PORT_MIN + k } : s;
  });
}

export interface ServiceSetOptions {
  endpoints?: number;
  proto?: Proto;
  port?: number;
  targetPort?: number;
}

export function ipv4ToInt(addr: string): number {
  const p = addr.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) {
    throw new RangeError(`not an IPv4 address: ${addr}`);
  }
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Endpoint k (global index). The /17 holds 32766 usable hosts, so beyond that addresses repeat
 * across services (as different services may share pods); within one service they never do. */
export function endpointAddr(k: number): string {
  return intToIpv4(EP_BASE + 1 + (k % (EP_SPACE - 2)));
}

export function makeServices(n: number, opts: ServiceSetOptions = {}): Service[] {
  const e = opts.endpoints ?? 8;
  if (n < 1 || n > VIP_SPACE - 2) throw new RangeError(`services must be 1..${VIP_SPACE - 2}`);
  if (e < 1 || e > EP_SPACE - 2) throw new RangeError('bad endpoint count');
  const out: Service[] = [];
  for (let i = 0; i < n; i++) {
    const endpoints: string[] = [];
    for (let j = 0; j < e; j++) endpoints.push(endpointAddr(i * e + j));
    out.push({
      name: `bench/svc${i}:p${opts.port ?? 80}`,
      vip: intToIpv4(VIP_BASE + 1 + i),
      proto: opts.proto ?? 'udp',
      port: opts.port ?? 80,
      targetPort: opts.targetPort ?? 8080,
      endpoints,
    });
  }
  return out;
}

// kube-proxy's chain names: the first 16 characters of base32(sha256(...)).
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32(buf: Buffer): string {
  let bits = 0;
  let acc = 0;
  let s = '';
  for (const b of buf) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      s += B32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) s += B32[(acc << (5 - bits)) & 31];
  return s;
}

export function chainHash(...parts: string[]): string {
  return base32(createHash('sha256').update(parts.join('')).digest()).slice(0, 16);
}

export function svcChain(s: Service): string {
  return `KUBE-SVC-${chainHash(s.name, s.proto)}`;
}

export function extChain(s: Service): string {
  return `KUBE-EXT-${chainHash(s.name, s.proto)}`;
}

export function sepChain(s: Service, ep: string): string {
  return `KUBE-SEP-${chainHash(s.name, s.proto, `${ep}:${s.targetPort}`)}`;
}

function svcRules(s: Service, out: string[]): void {
  const svc = svcChain(s);
  const n = s.endpoints.length;
  out.push(
    `-A ${svc} -m comment --comment "${s.name} cluster IP" -m ${s.proto} -p ${s.proto} -d ${s.vip}/32 --dport ${s.port} ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`,
  );
  s.endpoints.forEach((ep, i) => {
    const stat = i < n - 1 ? ` -m statistic --mode random --probability ${(1 / (n - i)).toFixed(10)}` : '';
    out.push(`-A ${svc} -m comment --comment "${s.name} -> ${ep}:${s.targetPort}"${stat} -j ${sepChain(s, ep)}`);
  });
}

function sepRules(s: Service, ep: string, out: string[]): void {
  const sep = sepChain(s, ep);
  out.push(`-A ${sep} -m comment --comment ${s.name} -s ${ep}/32 -j KUBE-MARK-MASQ`);
  out.push(`-A ${sep} -m comment --comment ${s.name} -m ${s.proto} -p ${s.proto} -j DNAT --to-destination ${ep}:${s.targetPort}`);
}

/** The whole nat table as kube-proxy's iptables mode writes it, for `iptables-restore`. */
export function iptablesRestore(services: Service[]): string {
  const decl = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':KUBE-SERVICES - [0:0]',
    ':KUBE-NODEPORTS - [0:0]',
    ':KUBE-POSTROUTING - [0:0]',
    ':KUBE-MARK-MASQ - [0:0]',
  ];
  const rules = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    `-A KUBE-POSTROUTING -m mark ! --mark 0x${MASQ_MARK.toString(16)}/0x${MASQ_MARK.toString(16)} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark 0x${MASQ_MARK.toString(16)}`,
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    `-A KUBE-MARK-MASQ -j MARK --or-mark 0x${MASQ_MARK.toString(16)}`,
  ];
  for (const s of services) {
    decl.push(`:${svcChain(s)} - [0:0]`);
    for (const ep of s.endpoints) decl.push(`:${sepChain(s, ep)} - [0:0]`);
    rules.push(
      `-A KUBE-SERVICES -m comment --comment "${s.name} cluster IP" -m ${s.proto} -p ${s.proto} -d ${s.vip}/32 --dport ${s.port} -j ${svcChain(s)}`,
    );
    svcRules(s, rules);
    for (const ep of s.endpoints) sepRules(s, ep, rules);
    if (s.nodePort) {
      // externalTrafficPolicy Cluster: every external connection is masqueraded, then load-balanced.
      decl.push(`:${extChain(s)} - [0:0]`);
      rules.push(
        `-A KUBE-NODEPORTS -m comment --comment ${s.name} -m ${s.proto} -p ${s.proto} --dport ${s.nodePort} -j ${extChain(s)}`,
        `-A ${extChain(s)} -m comment --comment "masquerade traffic for ${s.name} external destinations" -j KUBE-MARK-MASQ`,
        `-A ${extChain(s)} -j ${svcChain(s)}`,
      );
    }
  }
  rules.push(
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
  );
  return [...decl, ...rules, 'COMMIT', ''].join('\n');
}

/** `iptables-restore --noflush` input replacing endpoint `oldEp` of `s` with `newEp`: the
 * service chain is re-declared (which flushes it) and rewritten, the old endpoint chain goes. */
export function iptablesEndpointChange(s: Service, oldEp: string, newEp: string): string {
  const next: Service = { ...s, endpoints: s.endpoints.map((e) => (e === oldEp ? newEp : e)) };
  const out = ['*nat', `:${svcChain(next)} - [0:0]`, `:${sepChain(next, newEp)} - [0:0]`, `:${sepChain(s, oldEp)} - [0:0]`];
  svcRules(next, out);
  sepRules(next, newEp, out);
  out.push(`-X ${sepChain(s, oldEp)}`, 'COMMIT', '');
  return out.join('\n');
}

// nftables mode: chain names as kube-proxy's nftables proxier builds them.
function nftSvcChain(s: Service): string {
  const [nsName, port] = s.name.split(':');
  return `service-${chainHash(s.name, s.proto).slice(0, 8)}-${nsName}/${s.proto}/${port}`;
}

function nftExtChain(s: Service): string {
  const [nsName, port] = s.name.split(':');
  return `external-${chainHash(s.name, s.proto).slice(0, 8)}-${nsName}/${s.proto}/${port}`;
}

function nftEpChain(s: Service, ep: string): string {
  const [nsName, port] = s.name.split(':');
  return `endpoint-${chainHash(s.name, s.proto, ep).slice(0, 8)}-${nsName}/${s.proto}/${port}__${ep}/${s.targetPort}`;
}

function nftSvcBody(s: Service): string[] {
  const vm = s.endpoints.map((ep, i) => `${i} : goto ${nftEpChain(s, ep)}`).join(', ');
  return [
    `ip daddr ${s.vip} ${s.proto} dport ${s.port} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`,
    `numgen random mod ${s.endpoints.length} vmap { ${vm} }`,
  ];
}

function nftEpBody(s: Service, ep: string): string[] {
  return [`ip saddr ${ep} jump mark-for-masquerade`, `meta l4proto ${s.proto} dnat to ${ep}:${s.targetPort}`];
}

function chainBlock(name: string, body: string[], head?: string): string {
  const lines = [`\tchain ${name} {`];
  if (head) lines.push(`\t\t${head}`);
  for (const r of body) lines.push(`\t\t${r}`);
  lines.push('\t}');
  return lines.join('\n');
}

/** The table kube-proxy's nftables mode writes, for `nft -f` (deletes an existing one first). */
export function nftRuleset(services: Service[]): string {
  const m = MASQ_MARK.toString(16);
  const parts = [
    'table ip kube-proxy',
    'delete table ip kube-proxy',
    'table ip kube-proxy {',
    chainBlock('mark-for-masquerade', [`meta mark set meta mark or 0x${m}`]),
    chainBlock('masquerading', [`meta mark & 0x${m} == 0 return`, `meta mark set meta mark xor 0x${m}`, 'masquerade fully-random']),
    chainBlock('nat-prerouting', ['jump services'], 'type nat hook prerouting priority dstnat; policy accept;'),
    chainBlock('nat-output', ['jump services'], 'type nat hook output priority -100; policy accept;'),
    chainBlock('nat-postrouting', ['jump masquerading'], 'type nat hook postrouting priority srcnat; policy accept;'),
    '\tmap service-ips {',
    '\t\ttype ipv4_addr . inet_proto . inet_service : verdict',
  ];
  if (services.length) {
    const el = services.map((s) => `${s.vip} . ${s.proto} . ${s.port} : goto ${nftSvcChain(s)}`);
    parts.push(`\t\telements = {\n\t\t\t${el.join(',\n\t\t\t')}\n\t\t}`);
  }
  parts.push('\t}');
  const np = services.filter((s) => s.nodePort);
  parts.push('\tmap service-nodeports {', '\t\ttype inet_proto . inet_service : verdict');
  if (np.length) parts.push(`\t\telements = {\n\t\t\t${np.map((s) => `${s.proto} . ${s.nodePort} : goto ${nftExtChain(s)}`).join(',\n\t\t\t')}\n\t\t}`);
  parts.push('\t}');
  parts.push(
    chainBlock('services', ['ip daddr . meta l4proto . th dport vmap @service-ips', 'fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports']),
    chainBlock('nodeports', ['meta l4proto . th dport vmap @service-nodeports']),
  );
  for (const s of services) {
    parts.push(chainBlock(nftSvcChain(s), nftSvcBody(s)));
    if (s.nodePort) parts.push(chainBlock(nftExtChain(s), ['jump mark-for-masquerade', `goto ${nftSvcChain(s)}`]));
    for (const ep of s.endpoints) parts.push(chainBlock(nftEpChain(s, ep), nftEpBody(s, ep)));
  }
  parts.push('}', '');
  return parts.join('\n');
}

/** `nft -f` input replacing one endpoint: add the new endpoint chain, rewrite the service
 * chain, delete the old endpoint chain, all in one transaction. */
export function nftEndpointChange(s: Service, oldEp: string, newEp: string): string {
  const next: Service = { ...s, endpoints: s.endpoints.map((e) => (e === oldEp ? newEp : e)) };
  const t = 'ip kube-proxy';
  const out = [`add chain ${t} ${nftEpChain(next, newEp)}`];
  for (const r of nftEpBody(next, newEp)) out.push(`add rule ${t} ${nftEpChain(next, newEp)} ${r}`);
  out.push(`flush chain ${t} ${nftSvcChain(next)}`);
  for (const r of nftSvcBody(next)) out.push(`add rule ${t} ${nftSvcChain(next)} ${r}`);
  out.push(`delete chain ${t} ${nftEpChain(s, oldEp)}`, '');
  return out.join('\n');
}

export interface KpbpfVip {
  prefix: string;
  protocol: Proto;
  port: number;
  target_port: number;
  new_len: number;
  node_port?: number;
  backends: string[];
}

export interface KpbpfInterface {
  name: string;
  mode?: 'native' | 'generic' | 'auto';
  redirect?: boolean;
}

export interface KpbpfConfig {
  conf: { buckets: number; timeout: number };
  interfaces: KpbpfInterface[];
  vips: KpbpfVip[];
}

/** The equivalent kpbpf JSON config (issue 2's shape). */
export function kpbpfConfig(
  services: Service[],
  opts: { interfaces?: KpbpfInterface[]; buckets?: number; timeout?: number; newLen?: number } = {},
): KpbpfConfig {
  return {
    conf: { buckets: opts.buckets ?? 131072, timeout: opts.timeout ?? 30 },
    interfaces: opts.interfaces ?? [],
    vips: services.map((s) => ({
      prefix: `${s.vip}/32`,
      protocol: s.proto,
      port: s.port,
      target_port: s.targetPort,
      new_len: opts.newLen ?? 1021,
      ...(s.nodePort ? { node_port: s.nodePort } : {}),
      backends: [...s.endpoints],
    })),
  };
}
