// Per-packet cost with BPF_PROG_TEST_RUN: kp.bpf.o's paths beside pass.bpf.o and parse.bpf.o and,
// when given, Katran's balancer, in one process, with V VIPs configured, one hot flow and then F
// flows preloaded. Every path runs with repeat = 1 in a loop (a DNAT rewrites the packet, so a
// kernel repeat would not re-take the same path), and counters must move by exactly the number of
// iterations.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Control } from '../dataplane/control.js';
import { parseConfig } from '../config/validate.js';
import { BpfObject, testRun } from '../loader/index.js';
import { closeFd, dupFd, numPossibleCpus } from '../sys/libbpf.js';
import { addU64, BpfMap } from '../maps/map.js';
import { CT_FLAG, CT_STATES, KP_DIR, ct as ctCodec, flowKey as flowKeyCodec, type Ct, type FlowKey } from '../maps/codecs.js';
import { KP_STAT_NAMES } from '../dataplane/stats.js';
import { REPO } from './dataplanes.js';
import { KatranAnchor, katranFlowKey } from './katran.js';
import { enterRoutedNetns } from './netns.js';
import { kpbpfConfig, makeServices, ipv4ToInt } from './rulesets.js';
import { addrToBytes } from '../maps/addr.js';

export interface DatapathRow {
  path: string;
  nsPerPacket: number;
  iterations: number;
  verified: string;
  /** the Katran row this one is compared with */
  anchor?: string;
}

export interface DatapathResult {
  method: string;
  /** kp_ct's kernel memory (fdinfo memlock) for its capacity, and per connection */
  connectionMemory?: { tableBytes: number; connections: number; perConnection: number; cpus: number };
  vips: number;
  flows: number;
  /** a Katran object was given (--katran) */
  katran?: string;
  rows: DatapathRow[];
}

const XDP_PASS = 2;
const XDP_TX = 3;
const XDP_REDIRECT = 4;
/** Where the endpoints of makeServices live and where the benchmark's clients come from. */
const ENDPOINT_NET = '198.18.128.0/17';
const CLIENT_NET = '198.18.64.0/18';
/** The IPv6 service's endpoints and clients (NAT66 rows). */
const ENDPOINT_NET6 = '2001:db8:80::/48';
const CLIENT_NET6 = '2001:db8:40::/48';
const VIP6 = '2001:db8:100::1';
const VIP6_BACKENDS = Array.from({ length: 8 }, (_, i) => `2001:db8:80::${i + 1}`);
/** The cross-family services (NAT46, NAT64 rows): an IPv4 VIP with the IPv6 endpoints, an IPv6 VIP with IPv4 ones. */
const VIP46 = '198.18.99.46';
const VIP64 = '2001:db8:100::64';
const VIP64_BACKENDS = Array.from({ length: 8 }, (_, i) => `198.18.200.${i + 1}`);

function csum(b: Buffer, sum = 0): number {
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length & 1) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Ethernet + IPv4 + UDP (18 bytes payload) with valid checksums. */
export function udpPacket(saddr: string, daddr: string, sport: number, dport: number): Buffer {
  const p = Buffer.alloc(60);
  p.writeUInt16BE(0x0800, 12);
  const ip = p.subarray(14, 34);
  ip[0] = 0x45;
  ip.writeUInt16BE(46, 2);
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 17;
  ip.writeUInt32BE(ipv4ToInt(saddr), 12);
  ip.writeUInt32BE(ipv4ToInt(daddr), 16);
  ip.writeUInt16BE(~csum(ip) & 0xffff, 10);
  const udp = p.subarray(34);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(26, 4);
  const pseudo = Buffer.concat([ip.subarray(12, 20), Buffer.from([0, 17, 0, 26])]);
  udp.writeUInt16BE(~csum(udp, csum(pseudo)) & 0xffff || 0xffff, 6);
  return p;
}

/** Ethernet + IPv6 + UDP (18 bytes payload, as udpPacket's) with a valid checksum: 80 bytes. */
export function udp6Packet(saddr: string, daddr: string, sport: number, dport: number): Buffer {
  const p = Buffer.alloc(80);
  p.writeUInt16BE(0x86dd, 12);
  const ip = p.subarray(14, 54);
  ip[0] = 0x60;
  ip.writeUInt16BE(26, 4);
  ip[6] = 17;
  ip[7] = 64;
  addrToBytes(saddr).copy(ip, 8);
  addrToBytes(daddr).copy(ip, 24);
  const udp = p.subarray(54);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(26, 4);
  const pseudo = Buffer.concat([ip.subarray(8, 40), Buffer.from([0, 0, 0, 26, 0, 0, 0, 17])]);
  udp.writeUInt16BE(~csum(udp, csum(pseudo)) & 0xffff || 0xffff, 6);
  return p;
}

const client6Addr = (i: number) => `2001:db8:40::${((i >> 8) & 0xffff).toString(16)}:${(i & 255).toString(16)}`;

const clientAddr = (i: number) => `198.18.${64 + ((i >> 16) & 63)}.${(i >> 8) & 255}`;
// Clients send from the ephemeral range (32768-60999), as Linux clients do.
const clientPort = (i: number) => 32768 + (i & 255) * 16 + ((i >> 22) & 15);
const HOT_PORT = 44242;
const NODE_PORT = 30080;
const MASQ_NODE_PORT = 30081;
const MASQ_PORTS = [41000, 65535];
/** The bench namespace's address on its client side (netns.ts), where the node port is served. */
const NODE_ADDR = '198.19.254.5';

/** A map's kernel memory as the kernel accounts it (fdinfo's memlock). */
function memlock(fd: number): number {
  const m = /^memlock:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** Packets per block: a path's figure is the median of its blocks' means, so a burst of load from
 * another tenant of this shared machine moves a block or two, not the figure. */
const BLOCK = 250;

/** One path to measure: its program, its packets and the verdict every run must return. */
interface Path {
  progFd: number;
  pkts: Buffer[];
  expect: number;
}

const median = (xs: number[]): number => {
  const v = [...xs].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length & 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};

/**
 * ns per packet of each path, measured together: block i of every path runs before block i + 1 of
 * any, so the paths a ratio compares see the same moments of the machine's load.
 */
function measure(paths: Path[], ingressIfindex: number): number[] {
  const means: number[][] = paths.map(() => []);
  const blocks = Math.max(...paths.map((p) => Math.ceil(p.pkts.length / BLOCK)));
  for (let i = 0; i < blocks; i++) {
    paths.forEach((path, k) => {
      const block = path.pkts.slice(i * BLOCK, (i + 1) * BLOCK);
      if (!block.length) return;
      let total = 0;
      for (const p of block) {
        const r = testRun(path.progFd, p, { repeat: 1, ingressIfindex });
        if (r.retval !== path.expect) throw new Error(`unexpected verdict ${r.retval}, expected ${path.expect}`);
        total += r.durationNs;
      }
      means[k].push(total / block.length);
    });
  }
  return means.map(median);
}

export interface DatapathOptions {
  vips: number;
  flows: number;
  iterations: number;
  bpffs: string;
  /** Katran's balancer object, built by the user from its public repository */
  katran?: string;
  log: (m: string) => void;
}

export async function runDatapath(o: DatapathOptions): Promise<DatapathResult> {
  const services = makeServices(o.vips);
  const target = services[services.length - 1];
  const n = o.iterations;
  const ns = enterRoutedNetns(`kpbdp${process.pid}`, ENDPOINT_NET, CLIENT_NET, { backendNet: ENDPOINT_NET6, clientNet: CLIENT_NET6 });
  const rows: DatapathRow[] = [];
  let control: Control | undefined;
  let katran: KatranAnchor | undefined;
  let floor: BpfObject | undefined;
  try {
    // Tables sized for the preload plus every new flow of the run, as a production node would be.
    const buckets = 2 ** Math.ceil(Math.log2(Math.max(1024, o.flows + 4 * n)));
    control = Control.open({ bpffs: o.bpffs, load: true, buckets });
    // The measured service also has a node port, served on the namespace's own addresses, with its
    // backends on this node (no masquerade); the one before it has a node port and backends on other
    // nodes, so its node port connections are masqueraded. Masquerade ports: above this namespace's
    // ephemeral range, made smaller here so that the run's new connections never run out of ports.
    writeFileSync('/proc/sys/net/ipv4/ip_local_port_range', `32768 ${MASQ_PORTS[0] - 1}`);
    const cfg = kpbpfConfig(services, { buckets });
    const last = cfg.vips.length - 1;
    cfg.vips[last] = { ...cfg.vips[last], node_port: NODE_PORT, backends: cfg.vips[last].backends.map((a) => ({ address: a, local: true })) } as never;
    cfg.vips[last - 1] = { ...cfg.vips[last - 1], node_port: MASQ_NODE_PORT } as (typeof cfg.vips)[number];
    (cfg.conf as Record<string, unknown>).masquerade_ports = MASQ_PORTS.join('-');
    // One IPv6 service (NAT66) beside them, for the IPv6 rows.
    cfg.vips.push({ ...cfg.vips[0], prefix: `${VIP6}/128`, backends: VIP6_BACKENDS } as (typeof cfg.vips)[number]);
    // And one NAT46 and one NAT64 service, for the 4<->6 rows.
    cfg.vips.push({ ...cfg.vips[0], prefix: `${VIP46}/32`, backends: VIP6_BACKENDS } as (typeof cfg.vips)[number]);
    cfg.vips.push({ ...cfg.vips[0], prefix: `${VIP64}/128`, backends: VIP64_BACKENDS } as (typeof cfg.vips)[number]);
    control.apply(parseConfig(cfg), { dryRun: false });
    const dp = control.dp;
    // The forwarding decision is real: both ends of the namespace's veth pair may be redirected to.
    for (const ifindex of [ns.backendIf, ns.clientIf]) dp.maps.txPorts.update(ifindex, { ifindex, prog: 0 });
    const stat = (name: string) => Number(dp.maps.stats.sum(KP_STAT_NAMES.indexOf(name.toLowerCase() as never), addU64) ?? 0n);
    const vip = control.listVips().find((v) => v.prefix === `${target.vip}/32`)!;
    const be = vip.backends[0];
    const vipAddr = target.vip;
    const countersOf = (id: number) => () => control!.stats().vips.find((x) => x.id === id)!.counters;
    const existing = countersOf(vip.id);
    const vip6 = control.listVips().find((v) => v.prefix === `${VIP6}/128`)!;
    const run = (progFd: number, pkts: Buffer[], expect: number) => measure([{ progFd, pkts, expect }], ns.clientIf)[0];
    const fresh = (net: number) => Array.from({ length: n }, (_, i) => udpPacket(`198.18.${net}.${i & 255}`, vipAddr, 40000 + (i >> 8), target.port));
    if (o.katran) {
      // The same capacity as kpbpf's table: `buckets` connections.
      katran = KatranAnchor.open(o.katran, { vip: vipAddr, port: target.port, real: be.address, gatewayMac: ns.backendGwMac, lruSize: buckets });
    }
    // The floor of a new connection: the parser, the flow key and one (or two) LRU inserts into a
    // table of kp_ct's geometry, nothing else.
    floor = BpfObject.open(join(REPO, 'build', 'bench', 'insert.bpf.o'));
    floor.setMaxEntries('kp_bench_ct', 2 * buckets);
    floor.load();
    const floorMap = new BpfMap(floor.mapFd('kp_bench_ct'), flowKeyCodec, ctCodec, 'kp_bench_ct'); // the object owns the fd
    const ins = (entries: 1 | 2, path: string, pkts: Buffer[]): Row => ({
      path, progFd: floor!.progFd(`kp_insert${entries}`), pkts, expect: XDP_PASS,
      before: () => () => `XDP_PASS every run (${entries === 1 ? 'one insert' : 'two inserts'} made)`,
    });
    /** A row to measure: its path and how its counters must have moved afterwards (throws if not). */
    interface Row extends Path {
      path: string;
      anchor?: string;
      before: () => () => string;
    }
    /** kpbpf's counter `name` (and VIP counter `vipField`) must move by exactly n (`shared`: n per row of the group). */
    const kp = (path: string, pkts: Buffer[], name: string, vipField?: 'existingPkts' | 'firstPkts', anchor?: string, shared = 1, counters = existing): Row => ({
      path, anchor, progFd: dp.progFd, pkts, expect: XDP_REDIRECT,
      before: () => {
        const b = stat(name);
        const v0 = vipField ? counters()[vipField] : 0;
        return () => {
          const d = stat(name) - b;
          if (d !== shared * n) throw new Error(`${path}: ${name} moved by ${d}, expected ${shared * n}`);
          if (vipField && counters()[vipField] - v0 !== n) throw new Error(`${path}: ${vipField} did not move by the iteration count`);
          return `${name} +${d}${shared > 1 ? ` (its group's ${shared} rows)` : ''}${vipField ? `, ${vipField === 'firstPkts' ? 'first' : 'existing'} +${n}` : ''}, XDP_REDIRECT`;
        };
      },
    });
    const kt = (path: string, pkts: Buffer[], misses: bigint): Row => ({
      path, progFd: katran!.progFd, pkts, expect: XDP_TX,
      before: () => {
        const a = katran!.lruCounters();
        return () => {
          const b = katran!.lruCounters();
          if (b.packets - a.packets !== BigInt(n) || b.misses - a.misses !== misses) {
            throw new Error(`${path}: LRU packets +${b.packets - a.packets}, misses +${b.misses - a.misses}; expected +${n}, +${misses}`);
          }
          return `XDP_TX every run, LRU packets +${n}, misses +${misses}`;
        };
      },
    });
    /** Rows measured together (interleaved blocks); FIB lookups are those of the whole group. */
    const group = (g: Row[]) => {
      const fib0 = stat('FIB_LOOKUP');
      const checks = g.map((x) => x.before());
      const nsPer = measure(g, ns.clientIf);
      const fib = stat('FIB_LOOKUP') - fib0;
      g.forEach((x, i) => {
        const verified = checks[i]() + (x.progFd === dp.progFd ? `, FIB lookups in its group +${fib}` : '');
        rows.push({ path: x.path, nsPerPacket: nsPer[i], iterations: n, verified, anchor: x.anchor });
      });
    };

    // Baselines, in the same process.
    for (const name of ['pass', 'parse']) {
      const obj = BpfObject.open(join(REPO, 'build', 'bench', `${name}.bpf.o`));
      try {
        obj.load();
        const fd = dupFd(obj.progFd());
        try {
          const ns = run(fd, Array.from({ length: n }, () => udpPacket('198.18.64.1', vipAddr, 1000, target.port)), XDP_PASS);
          rows.push({ path: `${name}.bpf.o`, nsPerPacket: ns, iterations: n, verified: 'XDP_PASS every run' });
        } finally {
          closeFd(fd);
        }
      } finally {
        obj.close();
      }
    }
    const fd = dp.progFd;
    const b = stat('PASS_NO_MATCH');
    const passNs = run(fd, Array.from({ length: n }, () => udpPacket('198.18.64.1', '198.18.200.1', 1000, 9999)), XDP_PASS);
    if (stat('PASS_NO_MATCH') - b !== n) throw new Error('pass-through: PASS_NO_MATCH did not move by the iteration count');
    rows.push({ path: 'kpbpf non-VIP pass-through', nsPerPacket: passNs, iterations: n, verified: `PASS_NO_MATCH +${n}` });

    // 1 hot flow, tables otherwise empty; its reply, once its next hop is known.
    const hot = udpPacket('198.18.100.1', vipAddr, HOT_PORT, target.port);
    run(fd, [hot], XDP_REDIRECT);
    const hotConn = dp.maps.ct.lookup({ saddr: '198.18.100.1', daddr: vipAddr, sport: HOT_PORT, dport: target.port, proto: 17 })!;
    const hotBe = vip.backends.find((x) => x.id === hotConn.backendId)!;
    const hotReply = udpPacket(hotBe.address, '198.18.100.1', hotBe.port, HOT_PORT);
    run(fd, [hotReply], XDP_REDIRECT);
    if (katran) katran.preload([katranFlowKey('198.18.100.1', vipAddr, HOT_PORT, target.port, 17)]);
    const hots = Array.from({ length: n }, () => hot);
    // Its IPv6 twin (NAT66): the same UDP flow to an IPv6 VIP, and its reply, measured with them.
    const hot6 = udp6Packet('2001:db8:40::1', VIP6, HOT_PORT, target.port);
    run(fd, [hot6], XDP_REDIRECT);
    const hot6Conn = dp.maps.ct.lookup({ saddr: '2001:db8:40::1', daddr: VIP6, sport: HOT_PORT, dport: target.port, proto: 17 })!;
    const hot6Be = vip6.backends.find((x) => x.id === hot6Conn.backendId)!;
    const hot6Reply = udp6Packet(hot6Be.address, '2001:db8:40::1', hot6Be.port, HOT_PORT);
    run(fd, [hot6Reply], XDP_REDIRECT);
    const existing6 = countersOf(vip6.id);
    // The cross-family twins: a hot flow through the NAT46 and the NAT64 service, and their replies
    // (to the masquerade address and port the backend saw).
    const xlateHot = (client: string, vipAddr: string, pkt: typeof udpPacket, replyPkt: typeof udpPacket) => {
      const p = pkt(client, vipAddr, HOT_PORT, target.port);
      run(fd, [p], XDP_REDIRECT);
      const c = dp.maps.ct.lookup({ saddr: client, daddr: vipAddr, sport: HOT_PORT, dport: target.port, proto: 17 })!;
      const v = control!.listVips().find((x) => x.prefix.startsWith(`${vipAddr}/`))!;
      const b = v.backends.find((x) => x.id === c.backendId)!;
      const reply = replyPkt(b.address, c.vipAddr, b.port, c.clientPort);
      run(fd, [reply], XDP_REDIRECT);
      return { fwd: Array.from({ length: n }, () => p), reply: Array.from({ length: n }, () => reply), counters: countersOf(v.id) };
    };
    const h46 = xlateHot('198.18.100.3', VIP46, udpPacket, udp6Packet);
    const h64 = xlateHot('2001:db8:40::3', VIP64, udp6Packet, udpPacket);
    group([
      kp('kpbpf established, 1 hot flow', hots, 'DNAT', 'existingPkts', 'katran established, 1 hot flow', 4),
      kp('kpbpf reply SNAT, 1 hot flow', Array.from({ length: n }, () => hotReply), 'SNAT', undefined, 'kpbpf established, 1 hot flow', 4),
      ...(katran ? [kt('katran established, 1 hot flow', hots, 0n)] : []),
      kp('kpbpf IPv6 established, 1 hot flow', Array.from({ length: n }, () => hot6), 'DNAT', 'existingPkts', 'kpbpf established, 1 hot flow', 4, existing6),
      kp('kpbpf IPv6 reply SNAT, 1 hot flow', Array.from({ length: n }, () => hot6Reply), 'SNAT', undefined, 'kpbpf reply SNAT, 1 hot flow', 4),
      kp('kpbpf NAT46 established, 1 hot flow', h46.fwd, 'DNAT', 'existingPkts', 'kpbpf established, 1 hot flow', 4, h46.counters),
      kp('kpbpf NAT46 reply, 1 hot flow', h46.reply, 'SNAT', undefined, 'kpbpf reply SNAT, 1 hot flow', 4),
      kp('kpbpf NAT64 established, 1 hot flow', h64.fwd, 'DNAT', 'existingPkts', 'kpbpf IPv6 established, 1 hot flow', 4, h64.counters),
      kp('kpbpf NAT64 reply, 1 hot flow', h64.reply, 'SNAT', undefined, 'kpbpf IPv6 reply SNAT, 1 hot flow', 4),
    ]);
    const fresh6 = (net: number) => Array.from({ length: n }, (_, i) => udp6Packet(client6Addr(net * 65536 + i), VIP6, 40000 + (i >> 8), target.port));
    const fresh46 = Array.from({ length: n }, (_, i) => udpPacket(`198.18.${98 - (i >> 16)}.${(i >> 8) & 255}`, VIP46, 40000 + (i & 255), target.port));
    const fresh64 = Array.from({ length: n }, (_, i) => udp6Packet(client6Addr(2 * 65536 + i), VIP64, 40000 + (i >> 8), target.port));
    group([
      kp('kpbpf first packet, empty table', fresh(127), 'DNAT', 'firstPkts', 'katran new flow, empty LRU', 4),
      ...(katran ? [kt('katran new flow, empty LRU', fresh(127), BigInt(n))] : []),
      ins(1, 'floor: one LRU insert, empty table', fresh(127)),
      ins(2, 'floor: two LRU inserts, empty table', fresh(125)),
      kp('kpbpf IPv6 first packet, empty table', fresh6(1), 'DNAT', 'firstPkts', 'kpbpf first packet, empty table', 4, existing6),
      kp('kpbpf NAT46 first packet, empty table', fresh46, 'DNAT', 'firstPkts', 'kpbpf first packet, empty table', 4, h46.counters),
      kp('kpbpf NAT64 first packet, empty table', fresh64, 'DNAT', 'firstPkts', 'kpbpf IPv6 first packet, empty table', 4, h64.counters),
    ]);

    // The same service through its node port on the node's address, beside its cluster IP.
    const npHot = udpPacket('198.18.100.2', NODE_ADDR, HOT_PORT, NODE_PORT);
    run(fd, [npHot], XDP_REDIRECT);
    const npFresh = Array.from({ length: n }, (_, i) => udpPacket(`198.18.123.${i & 255}`, NODE_ADDR, 40000 + (i >> 8), NODE_PORT));
    group([
      kp('kpbpf node port established, 1 hot flow', Array.from({ length: n }, () => npHot), 'DNAT', 'existingPkts', 'kpbpf established, 1 hot flow', 2),
      kp('kpbpf node port first packet, empty table', npFresh, 'DNAT', 'firstPkts', 'kpbpf first packet, empty table', 2),
    ]);

    // Node port to a backend on another node: masqueraded to the node address, and its replies back.
    const mq = services[services.length - 2];
    const mqVip = control.listVips().find((v) => v.prefix === `${mq.vip}/32`)!;
    const mqStat = () => control!.stats().vips.find((x) => x.id === mqVip.id)!.counters;
    const mqHot = udpPacket('198.18.100.3', NODE_ADDR, HOT_PORT, MASQ_NODE_PORT);
    run(fd, [mqHot], XDP_REDIRECT);
    const mqConn = dp.maps.ct.lookup({ saddr: '198.18.100.3', daddr: NODE_ADDR, sport: HOT_PORT, dport: MASQ_NODE_PORT, proto: 17 })!;
    if (!(mqConn.flags & CT_FLAG.masq)) throw new Error('the masquerade rows: the connection was not masqueraded');
    const mqBe = mqVip.backends.find((x) => x.id === mqConn.backendId)!;
    const mqReply = udpPacket(mqBe.address, NODE_ADDR, mqBe.port, mqConn.clientPort);
    run(fd, [mqReply], XDP_REDIRECT); // the first reply moves the connection to udp_stream
    const mqFresh = Array.from({ length: n }, (_, i) => udpPacket(`198.18.124.${i & 255}`, NODE_ADDR, 40000 + (i >> 8), MASQ_NODE_PORT));
    const masq0 = stat('MASQ');
    const first0 = mqStat().firstPkts;
    const mqRows: Row[] = [
      kp('kpbpf node port masquerade, established', Array.from({ length: n }, () => mqHot), 'DNAT', undefined, 'kpbpf node port established, 1 hot flow', 2),
      kp('kpbpf node port masquerade, reply', Array.from({ length: n }, () => mqReply), 'SNAT', undefined, 'kpbpf reply SNAT, 1 hot flow'),
      kp('kpbpf node port masquerade, first packet', mqFresh, 'DNAT', undefined, 'kpbpf node port first packet, empty table', 2),
    ];
    group(mqRows);
    if (stat('MASQ') - masq0 !== n || mqStat().firstPkts - first0 !== n) {
      throw new Error(`the masquerade rows: masq +${stat('MASQ') - masq0}, first packets +${mqStat().firstPkts - first0}; expected +${n} each`);
    }

    // F flows preloaded: a forward record and a reply entry each, as the data path writes them.
    const now = process.hrtime.bigint();
    const batch: Array<[FlowKey, Ct]> = [];
    const rec = { vipAddr: '::', lastSeenNs: now, backendId: be.id, backendGen: be.gen, vipId: vip.id, vipPort: 0, state: CT_STATES.indexOf('udp_stream'), flags: 0 };
    const kflows: Buffer[] = [];
    for (let i = 0; i < o.flows; i++) {
      const client = { addr: clientAddr(i), port: clientPort(i) };
      batch.push([{ saddr: client.addr, daddr: vipAddr, sport: client.port, dport: target.port, proto: 17 }, { ...rec, clientPort: client.port }]);
      batch.push([
        { saddr: be.address, daddr: client.addr, sport: be.port, dport: client.port, proto: 17, dir: KP_DIR.reply },
        { ...rec, vipAddr, vipPort: target.port, clientPort: client.port, flags: CT_FLAG.reply }, // state mirrored, last reply now
      ]);
      if (katran) kflows.push(katranFlowKey(client.addr, vipAddr, client.port, target.port, 17));
    }
    floorMap.updateBatch(batch);
    dp.maps.ct.updateBatch(batch);
    katran?.preload(kflows);
    o.log(`datapath: ${o.vips} VIPs, ${o.flows} flows preloaded${katran ? ' (and in Katran\'s LRU)' : ''}`);
    const spread = Array.from({ length: n }, (_, i) => udpPacket(clientAddr(i % o.flows), vipAddr, clientPort(i % o.flows), target.port));
    // Replies of the preloaded connections, from their backend. Steady state: a connection's first
    // reply looks its next hop up (kept in its reply entry for a second), so one unmeasured pass first.
    const replies = Array.from({ length: n }, (_, i) => udpPacket(be.address, clientAddr(i % o.flows), be.port, clientPort(i % o.flows)));
    run(fd, replies, XDP_REDIRECT);
    // And the measured connections once on each side, so that neither starts from the other's
    // (or the floor table's) page-table and cache state.
    run(fd, spread, XDP_REDIRECT);
    if (katran) run(katran.progFd, spread, XDP_TX);
    const fl = o.flows.toLocaleString('en-US');
    group([
      kp(`kpbpf established, ${fl} flows`, spread, 'DNAT', 'existingPkts', `katran established, ${fl} flows`),
      kp(`kpbpf reply SNAT, ${fl} flows (next hop known)`, replies, 'SNAT', undefined, `kpbpf established, ${fl} flows`),
      ...(katran ? [kt(`katran established, ${fl} flows`, spread, 0n)] : []),
    ]);
    group([
      kp(`kpbpf first packet, ${fl} flows`, fresh(126), 'DNAT', 'firstPkts', `katran new flow, ${fl} flows`),
      ...(katran ? [kt(`katran new flow, ${fl} flows`, fresh(126), BigInt(n))] : []),
      ins(1, `floor: one LRU insert, ${fl} flows`, fresh(126)),
      ins(2, `floor: two LRU inserts, ${fl} flows`, fresh(124)),
    ]);
    for (const x of rows) o.log(`datapath ${x.path}: ${x.nsPerPacket.toFixed(1)} ns (${x.verified})`);
    const tableBytes = memlock(dp.maps.ct.fd);
    const connectionMemory = { tableBytes, connections: buckets, perConnection: tableBytes / buckets, cpus: numPossibleCpus() };
    o.log(`datapath kp_ct: ${tableBytes} bytes for ${buckets} connections, ${connectionMemory.perConnection.toFixed(0)} per connection`);
    return {
      method:
        `repeat = 1 runs in a loop of ${n} packets per path (the kernel's per-run duration: the median of the means of blocks of ${BLOCK} packets; the rows a ratio compares run together, block by block), ${o.vips.toLocaleString('en-US')} VIPs × 8 backends configured, ` +
        `first with one hot flow and empty tables, then with ${fl} connections preloaded (in kp_ct and, for the anchor, in Katran's per-CPU LRU; ` +
        `both sized for ${buckets.toLocaleString('en-US')} connections, kp_ct with two entries each; Katran holds its own single VIP, as its map holds at most 512). ` +
        'kpbpf runs with its forwarding decision: in a private namespace with routes and permanent neighbours, every rewritten packet is redirected ' +
        '(XDP_REDIRECT) through its next-hop cache; Katran encapsulates (IPIP) and sends with XDP_TX to its configured router MAC. Both get the same ' +
        'packets (60-byte UDP frames; the IPv6 rows, NAT66 to an IPv6 VIP with 8 IPv6 backends, 80-byte frames of the same UDP payload, measured in the group of the IPv4 rows they are compared with). Each path is verified by counters moving by exactly the iteration count and by its verdict. A repeat = 1 ' +
        "duration includes the kernel's per-run timing overhead, which every row shares.",
      connectionMemory,
      vips: o.vips,
      flows: o.flows,
      katran: o.katran,
      rows,
    };
  } finally {
    katran?.close();
    floor?.close();
    control?.purge(); // closes it too
    ns.leave();
  }
}
