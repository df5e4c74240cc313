// The forward step with the FIB: inside a private network namespace with a veth pair, a route
// and a permanent neighbour, a DNATed packet is redirected to a kp_tx_ports interface with its
// TTL decremented and MACs set from bpf_fib_lookup. BPF_PROG_TEST_RUN only returns the verdict;
// nothing is transmitted. This thread joins the namespace (setns) so that ifindexes and the
// FIB are the namespace's, and leaves it before deleting it.
import { execFileSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import koffi from 'koffi';
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildPacket, icmp6Error, icmpError, mtuWord, word32, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, verifyIcmp, type PacketSpec } from '../helpers/packet.js';
import { testConfig, BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, pinToCpu, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';
import { flushNextHops as flushMaps } from '../../src/dataplane/nexthops.js';

const NS = `kpbpf-h1-fib-${process.pid}`;
const CLONE_NEWNET = 0x40000000;
const NEIGH_MAC = '02:00:00:00:20:01';
const BACKEND = { addr: '198.18.20.1', port: 8080 };
const VIP = { addr: '198.18.10.1', port: 80 };
const BACKEND6 = { addr: '2001:db8:20::1', port: 8080 };
const VIP6 = { addr: '2001:db8:10::1', port: 80 };
const CLIENT6 = '2001:db8:1::10';

function skipReason(): string | undefined {
  const reason = bpfSkipReason('network namespaces and BPF_PROG_TEST_RUN');
  if (reason) return reason;
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'iproute2 (ip) is not installed: apt-get install -y iproute2';
  }
  return undefined;
}

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

function ifindex(name: string): number {
  return JSON.parse(ip('-n', NS, '-j', 'link', 'show', name))[0].ifindex as number;
}
function mac(name: string): string {
  return JSON.parse(ip('-n', NS, '-j', 'link', 'show', name))[0].address as string;
}

function makeNamespace(): void {
  ip('netns', 'add', NS);
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  ip('-n', NS, 'link', 'add', 'kpa', 'type', 'veth', 'peer', 'name', 'kpb');
  ip('-n', NS, 'addr', 'add', '198.18.20.254/24', 'dev', 'kpa');
  ip('-n', NS, 'addr', 'add', '198.18.0.254/24', 'dev', 'kpb');
  ip('-n', NS, 'link', 'set', 'kpa', 'up');
  ip('-n', NS, 'link', 'set', 'kpb', 'up');
  ip('-n', NS, 'neigh', 'replace', BACKEND.addr, 'lladdr', NEIGH_MAC, 'dev', 'kpa', 'nud', 'permanent');
  ip('-n', NS, 'addr', 'add', '2001:db8:20::fe/64', 'dev', 'kpa', 'nodad');
  ip('-n', NS, 'addr', 'add', '2001:db8:1::fe/64', 'dev', 'kpb', 'nodad');
  ip('-n', NS, 'neigh', 'replace', BACKEND6.addr, 'lladdr', NEIGH_MAC, 'dev', 'kpa', 'nud', 'permanent');
  // bpf_fib_lookup refuses to route for an ingress device without forwarding.
  execFileSync('ip', ['netns', 'exec', NS, 'sysctl', '-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
}

const setns = koffi.load('libc.so.6').func('int setns(int fd, int nstype)');

function enter(path: string): void {
  const fd = openSync(path, 'r');
  try {
    if (setns(fd, CLONE_NEWNET) !== 0) throw new Error(`setns(${path}) failed`);
  } finally {
    closeSync(fd);
  }
}

const reason = skipUnlessCi(skipReason());
if (reason) {
  t.skip(`FIB redirect fixtures: ${reason}`, async () => {});
} else {
  pinToCpu(0); // setns and test runs from one thread on one CPU
  const home = openSync('/proc/self/ns/net', 'r');
  let dp: Dataplane | undefined;
  const cleanup = () => {
    dp?.close();
    dp = undefined;
    if (setns(home, CLONE_NEWNET) !== 0) console.error('could not return to the original network namespace');
    try {
      ip('netns', 'del', NS);
    } catch {
      /* not created */
    }
  };
  t.teardown(() => {
    cleanup();
    closeSync(home);
  });
  let kpa = 0;
  let kpb = 0;
  let kpaMac = '';
  try {
    makeNamespace();
    enter(`/run/netns/${NS}`);
    kpa = ifindex('kpa');
    kpb = ifindex('kpb');
    kpaMac = mac('kpa');
    dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  } catch (e) {
    cleanup(); // a throw here ends the file before tap's teardown could run
    throw e;
  }
  dp.maps.config.update(0, testConfig({ flags: 0 }));
  dp.maps.vips.update({ addr: VIP.addr, port: VIP.port, proto: 6 }, { id: 1, tableLen: 7, flags: 0, targetPort: BACKEND.port });
  dp.maps.backends.update(1, { addr: BACKEND.addr, port: BACKEND.port, state: BACKEND_STATE.active, gen: 1, vipId: 1, weight: 1 });
  dp.setMaglevTable(1, Array(7).fill(1));
  dp.maps.vips.update({ addr: VIP6.addr, port: VIP6.port, proto: 6 }, { id: 2, tableLen: 7, flags: 0, targetPort: BACKEND6.port });
  dp.maps.backends.update(2, { addr: BACKEND6.addr, port: BACKEND6.port, state: BACKEND_STATE.active, gen: 1, vipId: 2, weight: 1 });
  dp.setMaglevTable(2, Array(7).fill(2));
  const live = dp;
  /** As the control plane does after a kp_tx_ports change; a test that changes routes or MTUs does it too. */
  const flushNextHops = () => {
    flushMaps(live.maps);
  };
  const txStats = (): [bigint, bigint] => [live.maps.stats.sum(KP_STAT.TX_REDIRECT, addU64)!, live.maps.stats.sum(KP_STAT.TX_PASS, addU64)!];

  const syn = (sport: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({
    srcMac: '02:00:00:00:00:0a',
    dstMac: mac('kpb'),
    src: '198.18.0.10',
    dst: VIP.addr,
    proto: 'tcp',
    sport,
    dport: VIP.port,
    tcpFlags: TCP_SYN,
    ...extra,
  });

  t.test('interface not in kp_tx_ports: XDP_PASS, DNATed, TTL and MACs untouched', async (t) => {
    const p = syn(40001);
    const [r0, p0] = txStats();
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS);
    t.equal(res.data.toString('hex'), buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port }).toString('hex'));
    t.same(txStats(), [r0, p0 + 1n], 'TX_PASS counted');
  });

  t.test('route + neighbour + vetted interface: XDP_REDIRECT with TTL-1 and MACs from the FIB', async (t) => {
    live.maps.txPorts.update(kpa, { ifindex: kpa, prog: 0 });
    flushNextHops();
    const p = syn(40002);
    const [r0, p0] = txStats();
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.REDIRECT);
    const want = buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port, ttl: 63, srcMac: kpaMac, dstMac: NEIGH_MAC });
    t.equal(res.data.toString('hex'), want.toString('hex'));
    t.same(verifyChecksums(res.data), { ip: true, l4: true });
    t.same(txStats(), [r0 + 1n, p0], 'TX_REDIRECT counted');
  });

  t.test('the next hop is cached: one FIB lookup per destination and second, a neighbour change within 1 s', async (t) => {
    const lookups = () => live.maps.stats.sum(KP_STAT.FIB_LOOKUP, addU64)!;
    flushNextHops();
    const l0 = lookups();
    for (const sport of [40030, 40031, 40032]) {
      const res = testRun(live.progFd, buildPacket(syn(sport)), { ingressIfindex: kpb });
      t.equal(res.retval, XDP.REDIRECT, `sport ${sport}: redirected`);
    }
    t.equal(lookups() - l0, 1n, 'three packets to one backend, one FIB lookup');
    const nh = live.maps.nexthop.lookup(BACKEND.addr)!;
    t.match(nh, { ifindex: kpa, dmac: NEIGH_MAC, smac: kpaMac, mtu: 1500, redirect: true }, 'the cached result');
    const NEW_MAC = '02:00:00:00:20:02';
    ip('-n', NS, 'neigh', 'replace', BACKEND.addr, 'lladdr', NEW_MAC, 'dev', 'kpa', 'nud', 'permanent');
    t.teardown(() => (ip('-n', NS, 'neigh', 'replace', BACKEND.addr, 'lladdr', NEIGH_MAC, 'dev', 'kpa', 'nud', 'permanent'), flushNextHops()));
    const before = parsePacket(testRun(live.progFd, buildPacket(syn(40033)), { ingressIfindex: kpb }).data);
    t.equal(before.dstMac, NEIGH_MAC, 'right after the change the cached MAC is still used');
    await sleep(1200);
    const after = parsePacket(testRun(live.progFd, buildPacket(syn(40034)), { ingressIfindex: kpb }).data);
    t.equal(after.dstMac, NEW_MAC, 'after a second the new neighbour is used');
  });

  t.test('a backend slot re-used for another address does not inherit the next hop of the old one', async (t) => {
    const OTHER = { addr: '198.18.20.2', mac: '02:00:00:00:20:03' };
    ip('-n', NS, 'neigh', 'replace', OTHER.addr, 'lladdr', OTHER.mac, 'dev', 'kpa', 'nud', 'permanent');
    const first = parsePacket(testRun(live.progFd, buildPacket(syn(40040)), { ingressIfindex: kpb }).data);
    t.equal(first.dstMac, NEIGH_MAC, 'slot 1 is the first backend: its neighbour');
    // The control plane frees a slot with a gen bump and re-uses it with another one.
    live.maps.backends.update(1, { addr: OTHER.addr, port: BACKEND.port, state: BACKEND_STATE.active, gen: 3, vipId: 1, weight: 1 });
    t.teardown(() => {
      live.maps.backends.update(1, { addr: BACKEND.addr, port: BACKEND.port, state: BACKEND_STATE.active, gen: 1, vipId: 1, weight: 1 });
      ip('-n', NS, 'neigh', 'del', OTHER.addr, 'dev', 'kpa');
    });
    const res = testRun(live.progFd, buildPacket(syn(40041)), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.REDIRECT);
    const after = parsePacket(res.data);
    t.equal(after.dst, OTHER.addr, 'DNATed to the new address');
    t.equal(after.dstMac, OTHER.mac, 'at once with the new address\'s neighbour, not the cached one of the old');
  });

  t.test('CHECKSUM_PARTIAL input redirected: the checksum is finished in XDP (the skb stays behind)', async (t) => {
    for (const [sport, size] of [[40010, 0], [40011, 1], [40012, 977]]) {
      const p = syn(sport, { payload: Buffer.alloc(size, 0x61) });
      const res = testRun(live.progFd, buildPacket({ ...p, l4Partial: true }), { ingressIfindex: kpb });
      t.equal(res.retval, XDP.REDIRECT, `payload ${size}: redirected`);
      const want = buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port, ttl: 63, srcMac: kpaMac, dstMac: NEIGH_MAC });
      t.equal(res.data.toString('hex'), want.toString('hex'), `payload ${size}: complete checksum, as if built from scratch`);
      t.same(verifyChecksums(res.data), { ip: true, l4: true });
    }
  });


  t.test('TTL 1 is left to the kernel (XDP_PASS, TTL unchanged)', async (t) => {
    const p = syn(40003, { ttl: 1 });
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS);
    t.equal(res.data.toString('hex'), buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port }).toString('hex'));
  });

  t.test('VLAN-tagged packets skip the FIB (XDP_PASS)', async (t) => {
    const p = syn(40004, { vlan: 7 });
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS);
    t.equal(res.data.toString('hex'), buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port }).toString('hex'));
  });

  t.test('a DF packet too big for the route to its backend: fragmentation needed back to the client, quoting the VIP', async (t) => {
    ip('-n', NS, 'link', 'set', 'kpa', 'mtu', '1280');
    flushNextHops();
    t.teardown(() => (ip('-n', NS, 'link', 'set', 'kpa', 'mtu', '1500'), flushNextHops()));
    const p = syn(40020, { tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x63) });
    const tooBig = () => live.maps.stats.sum(KP_STAT.ICMP_TOO_BIG, addU64)!;
    const before = tooBig();
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS, 'no neighbour for the client in this namespace: the kernel forwards it');
    t.equal(res.data.toString('hex'), icmpError(buildPacket(p), 3, 4, mtuWord(1280)).toString('hex'), 'VIP -> client, next-hop MTU 1280, the original packet quoted');
    t.same(verifyIcmp(res.data), { icmp: true, quotedIp: true });
    t.equal(tooBig() - before, 1n, 'ICMP_TOO_BIG counted');
    const noDf = syn(40021, { tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x63), df: false });
    const r2 = testRun(live.progFd, buildPacket(noDf), { ingressIfindex: kpb });
    t.equal(r2.retval, XDP.PASS, 'without DF: to the kernel, which fragments it');
    t.equal(r2.data.toString('hex'), buildPacket({ ...noDf, dst: BACKEND.addr, dport: BACKEND.port }).toString('hex'), 'DNATed');
  });

  t.test('a DF reply too big for the route to the client: fragmentation needed to the backend, quoting the backend', async (t) => {
    const sport = 40022;
    testRun(live.progFd, buildPacket(syn(sport)), { ingressIfindex: kpb });
    ip('-n', NS, 'link', 'set', 'kpb', 'mtu', '1280');
    flushNextHops();
    t.teardown(() => (ip('-n', NS, 'link', 'set', 'kpb', 'mtu', '1500'), flushNextHops()));
    const reply: PacketSpec = { srcMac: NEIGH_MAC, dstMac: kpaMac, src: BACKEND.addr, dst: '198.18.0.10', proto: 'tcp', sport: BACKEND.port, dport: sport, tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x64) };
    const res = testRun(live.progFd, buildPacket(reply), { ingressIfindex: kpa });
    t.equal(res.retval, XDP.REDIRECT, 'routed to the backend over the vetted interface');
    const want = icmpError(buildPacket(reply), 3, 4, mtuWord(1280), { ttl: 63, srcMac: kpaMac, dstMac: NEIGH_MAC });
    t.equal(res.data.toString('hex'), want.toString('hex'), 'client -> backend, the reply as the backend sent it quoted');
    t.same(verifyIcmp(res.data), { icmp: true, quotedIp: true });
  });

  const syn6 = (sport: number, extra: Partial<PacketSpec> = {}): PacketSpec => ({ ...syn(sport), src: CLIENT6, dst: VIP6.addr, ...extra });

  t.test('IPv6: DNATed and redirected with the hop limit decremented and MACs from the FIB', async (t) => {
    const p = syn6(40050);
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.REDIRECT);
    const want = buildPacket({ ...p, dst: BACKEND6.addr, dport: BACKEND6.port, ttl: 63, srcMac: kpaMac, dstMac: NEIGH_MAC });
    t.equal(res.data.toString('hex'), want.toString('hex'));
  });

  t.test('IPv6: a packet too big for the route to its backend gets packet too big from the VIP, its quote the packet the client sent', async (t) => {
    ip('-n', NS, 'link', 'set', 'kpa', 'mtu', '1280');
    flushNextHops();
    t.teardown(() => (ip('-n', NS, 'link', 'set', 'kpa', 'mtu', '1500'), flushNextHops()));
    const p = syn6(40051, { tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x63) });
    const tooBig = () => live.maps.stats.sum(KP_STAT.ICMP_TOO_BIG, addU64)!;
    const before = tooBig();
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS, 'no neighbour for the client in this namespace: the kernel forwards it');
    t.equal(res.data.toString('hex'), icmp6Error(buildPacket(p), 2, 0, word32(1280)).toString('hex'), 'type 2, MTU 1280, VIP -> client, quoted up to 1232 bytes');
    t.same(verifyChecksums(res.data), { ip: true, l4: true });
    t.equal(tooBig() - before, 1n, 'ICMP_TOO_BIG counted');
  });

  t.test('IPv6: a reply too big for the route to the client: packet too big to the backend, quoting the reply as the backend sent it', async (t) => {
    const sport = 40052;
    testRun(live.progFd, buildPacket(syn6(sport)), { ingressIfindex: kpb });
    ip('-n', NS, 'link', 'set', 'kpb', 'mtu', '1280');
    flushNextHops();
    t.teardown(() => (ip('-n', NS, 'link', 'set', 'kpb', 'mtu', '1500'), flushNextHops()));
    const reply: PacketSpec = { srcMac: NEIGH_MAC, dstMac: kpaMac, src: BACKEND6.addr, dst: CLIENT6, proto: 'tcp', sport: BACKEND6.port, dport: sport, tcpFlags: TCP_ACK, payload: Buffer.alloc(1300, 0x64) };
    const res = testRun(live.progFd, buildPacket(reply), { ingressIfindex: kpa });
    t.equal(res.retval, XDP.REDIRECT, 'routed to the backend over the vetted interface');
    const want = icmp6Error(buildPacket(reply), 2, 0, word32(1280), { ttl: 63, srcMac: kpaMac, dstMac: NEIGH_MAC, src: CLIENT6 });
    t.equal(res.data.toString('hex'), want.toString('hex'), 'client -> backend, hop limit 63');
    t.same(verifyChecksums(res.data), { ip: true, l4: true });
  });

  t.test('KP_CONF_F_NO_FIB: XDP_PASS even though a redirect is possible', async (t) => {
    live.maps.config.update(0, testConfig({ flags: KP_CONF_F_NO_FIB }));
    const p = syn(40005);
    const res = testRun(live.progFd, buildPacket(p), { ingressIfindex: kpb });
    t.equal(res.retval, XDP.PASS);
    t.equal(res.data.toString('hex'), buildPacket({ ...p, dst: BACKEND.addr, dport: BACKEND.port }).toString('hex'));
  });
}
