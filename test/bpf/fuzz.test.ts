// The data path's fuzzer: random, mutated and well-formed frames of both families through the real
// object (BPF_PROG_TEST_RUN), judged by an oracle that reads the frames with the test's own packet
// code, never the data path's:
//   - every verdict is DROP, PASS, TX or REDIRECT (never ABORTED);
//   - a frame that is not kpbpf's (not IP at all; or an IP header a router accepts with no VIP or
//     backend address on it, not ICMP) is passed with not one byte changed;
//   - a frame the data path rewrote is a well-formed packet, and one that came in with valid
//     checksums leaves with valid checksums;
//   - the connection table holds no reply entry whose forward record is missing (source port 0
//     once left such entries behind).
// The seed is fixed, so a failure repeats; KPBPF_FUZZ_FRAMES and KPBPF_FUZZ_SEED run it longer or
// elsewhere. A failure prints the frame in hex.
import t from 'tap';
import { parseConfig } from '../../src/config/validate.js';
import { testRun } from '../../src/loader/index.js';
import * as codecs from '../../src/maps/codecs.js';
import { buildPacket, ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, fragments, icmp6Error, icmpError, IPPROTO_ICMP, layout, mtuWord, parsePacket, TCP_ACK, TCP_SYN, verifyChecksums, type PacketSpec } from '../helpers/packet.js';
import { bpfSkipReason, testControl, XDP } from '../helpers/bpf.js';
import { skipUnlessCi } from '../helpers/ci.js';

const FRAMES = Number(process.env.KPBPF_FUZZ_FRAMES ?? 40_000);
const SEED = Number(process.env.KPBPF_FUZZ_SEED ?? 0x6b706675);

const VIP4 = '198.18.70.1';
const VIP46 = '198.18.70.2';
const VIP6 = '2001:db8:70::1';
const BACKENDS4 = ['198.18.70.10', '198.18.70.11'];
const BACKENDS6 = ['2001:db8:70::10', '2001:db8:70::11'];
const BACKENDS46 = ['2001:db8:70::20'];
const CLIENTS4 = ['198.18.1.1', '198.18.1.2', '198.18.1.3'];
const CLIENTS6 = ['2001:db8:1::1', '2001:db8:1::2'];
const ROUTER4 = '198.18.2.1';
const ROUTER6 = '2001:db8:2::1';
/** Addresses that make a frame kpbpf's when they are its source or destination. */
const OURS = new Set([VIP4, VIP46, VIP6, ...BACKENDS4, ...BACKENDS6, ...BACKENDS46].map(canonical));

/** mulberry32: small, seedable, good enough to pick bytes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function canonical(addr: string): string {
  if (!addr.includes(':')) return addr;
  const b = Buffer.alloc(16);
  const [head, tail] = addr.split('::');
  const hs = head ? head.split(':') : [];
  const ts = tail !== undefined && tail !== '' ? tail.split(':') : [];
  hs.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 2 * i));
  ts.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 16 - 2 * (ts.length - i)));
  return b.toString('hex');
}

/** The frame's L3 addresses and first protocol as read from its bytes (undefined: not readable IP). */
function addressesOf(f: Buffer): { v6: boolean; src: string; dst: string; proto: number } | undefined {
  if (f.length < 14) return undefined;
  let l3 = 14;
  let type = f.readUInt16BE(12);
  if (type === ETH_P_8021Q || type === 0x88a8) {
    if (f.length < 18) return undefined;
    type = f.readUInt16BE(16);
    l3 = 18;
  }
  if (type === ETH_P_IP && f.length >= l3 + 20) {
    const ip = (o: number) => `${f[o]}.${f[o + 1]}.${f[o + 2]}.${f[o + 3]}`;
    return { v6: false, src: ip(l3 + 12), dst: ip(l3 + 16), proto: f[l3 + 9] };
  }
  if (type === ETH_P_IPV6 && f.length >= l3 + 40) {
    return { v6: true, src: f.subarray(l3 + 8, l3 + 24).toString('hex'), dst: f.subarray(l3 + 24, l3 + 40).toString('hex'), proto: f[l3 + 6] };
  }
  return undefined;
}

function isIp(f: Buffer): boolean {
  if (f.length < 14) return false;
  let type = f.readUInt16BE(12);
  if ((type === ETH_P_8021Q || type === 0x88a8) && f.length >= 18) type = f.readUInt16BE(16);
  return type === ETH_P_IP || type === ETH_P_IPV6;
}

/**
 * Whether the IP header is one a router accepts (RFC 1812 5.2.2; RFC 8200): version, header length,
 * total or payload length within the frame. A router discards the others, and so may kpbpf.
 */
function soundL3(f: Buffer): boolean {
  let l3 = 14;
  let type = f.readUInt16BE(12);
  if (type === ETH_P_8021Q || type === 0x88a8) {
    type = f.readUInt16BE(16);
    l3 = 18;
  }
  if (type === ETH_P_IP) {
    const ihl = (f[l3] & 0x0f) * 4;
    const total = f.readUInt16BE(l3 + 2);
    return f[l3] >> 4 === 4 && ihl >= 20 && total >= ihl && l3 + total <= f.length;
  }
  return f[l3] >> 4 === 6 && l3 + 40 + f.readUInt16BE(l3 + 4) <= f.length;
}

/** A frame too short for its VLAN tag: a switch discards it, and so may kpbpf. */
const truncatedTag = (f: Buffer) => f.length < 18 && f.length >= 14 && [ETH_P_8021Q, 0x88a8].includes(f.readUInt16BE(12));

/** Whether the oracle says the frame is not kpbpf's at all: it must pass untouched. */
function notOurs(f: Buffer): boolean {
  if (truncatedTag(f)) return false;
  if (!isIp(f)) return true;
  const a = addressesOf(f);
  if (!a || !soundL3(f)) return false; // a router would discard it: the data path may too
  if (OURS.has(a.src) || OURS.has(a.dst)) return false;
  if (a.v6) return a.proto === 6 || a.proto === 17 || a.proto === 59; // extension headers may hide ICMPv6
  return a.proto !== IPPROTO_ICMP;
}

function fragmentOf(f: Buffer): boolean {
  const { l3, ethertype } = layout(f);
  if (ethertype === ETH_P_IP) return (f.readUInt16BE(l3 + 6) & 0x3fff) !== 0;
  return f.subarray(l3, l3 + 48).includes(44) && f[l3 + 6] !== 6 && f[l3 + 6] !== 17;
}

/** Checksums as the test's code computes them; undefined when the frame is not one it can read. */
function checksumsOf(f: Buffer): { ip: boolean; l4: boolean } | undefined {
  try {
    if (!isIp(f) || fragmentOf(f)) return undefined;
    parsePacket(f);
    return verifyChecksums(f);
  } catch {
    return undefined;
  }
}

class Frames {
  constructor(private readonly rnd: () => number) {}

  private int(n: number): number {
    return Math.floor(this.rnd() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  private bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }

  private flags(): number {
    return this.pick([TCP_SYN, TCP_ACK, TCP_ACK, TCP_SYN | TCP_ACK, 0x11, 0x04, 0x14, 0x18, this.int(256)]);
  }

  private port(): number {
    return this.pick([0, 53, 80, 8080, 40000, 40001, 40002, 65535, 1 + this.int(65535)]);
  }

  /** A packet kpbpf has a rule for: to a VIP, from a backend, or an ICMP error about either. */
  private wellFormed(): PacketSpec {
    const v6 = this.rnd() < 0.5;
    const proto = this.pick(['tcp', 'tcp', 'udp'] as const);
    const payload = this.bytes(this.int(3) === 0 ? this.int(1400) : this.int(64));
    const base = { proto, payload, tcpFlags: this.flags(), seq: this.int(2 ** 32), ack: this.int(2 ** 32), ttl: this.pick([1, 2, 64]) };
    switch (this.int(4)) {
      case 0: // client → VIP
        return v6
          ? { ...base, src: this.pick(CLIENTS6), dst: VIP6, sport: this.port(), dport: this.pick([80, 80, 81]) }
          : { ...base, src: this.pick(CLIENTS4), dst: this.pick([VIP4, VIP4, VIP46]), sport: this.port(), dport: this.pick([80, 53, 81]) };
      case 1: // backend → client
        return v6
          ? { ...base, src: this.pick([...BACKENDS6, ...BACKENDS46]), dst: this.pick(CLIENTS6), sport: this.pick([8080, 80]), dport: this.port() }
          : { ...base, src: this.pick(BACKENDS4), dst: this.pick(CLIENTS4), sport: this.pick([8080, 53]), dport: this.port() };
      case 2: // client → backend directly
        return v6
          ? { ...base, src: this.pick(CLIENTS6), dst: this.pick(BACKENDS6), sport: this.port(), dport: 8080 }
          : { ...base, src: this.pick(CLIENTS4), dst: this.pick(BACKENDS4), sport: this.port(), dport: 8080 };
      default: // neither: not kpbpf's
        return v6
          ? { ...base, src: this.pick(CLIENTS6), dst: '2001:db8:99::9', sport: this.port(), dport: this.port() }
          : { ...base, src: this.pick(CLIENTS4), dst: '198.18.99.9', sport: this.port(), dport: this.port() };
    }
  }

  private built(): Buffer {
    const spec = this.wellFormed();
    const v6 = spec.src.includes(':');
    const r = this.int(10);
    if (r === 0) {
      // an ICMP error about it, from a router on the way
      const orig = buildPacket({ ...spec, payload: spec.payload!.subarray(0, 8) });
      return v6 ? icmp6Error(orig, this.pick([1, 2, 3]), this.int(5), mtuWord(1280), { src: ROUTER6, dst: spec.src }) : icmpError(orig, this.pick([3, 11]), this.pick([1, 3, 4]), mtuWord(1200), { src: ROUTER4, dst: spec.src });
    }
    if (r === 1 && spec.payload!.length > 64) return this.pick(fragments(spec, 48));
    if (r === 2) return buildPacket({ ...spec, vlan: 1 + this.int(4094) });
    if (r === 3 && v6) return buildPacket({ ...spec, ext6: [this.pick([0, 43, 60])] });
    return buildPacket(spec);
  }

  /** Bytes flipped (mostly in the headers), the frame cut short or grown. */
  private mutate(f: Buffer): Buffer {
    const out = Buffer.from(f);
    const n = 1 + this.int(4);
    for (let i = 0; i < n; i++) {
      const at = this.rnd() < 0.8 ? this.int(Math.min(out.length, 80)) : this.int(out.length);
      out[at] = this.rnd() < 0.5 ? out[at] ^ (1 << this.int(8)) : this.int(256);
    }
    const r = this.int(6);
    if (r === 0) return out.subarray(0, 14 + this.int(Math.max(1, out.length - 14)));
    if (r === 1) return Buffer.concat([out, this.bytes(1 + this.int(64))]);
    return out;
  }

  /** Random bytes behind an IPv4, IPv6 or other Ethernet header. */
  private random(): Buffer {
    const type = this.pick([ETH_P_IP, ETH_P_IPV6, ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, 0x0806, this.int(65536)]);
    const body = this.bytes(this.int(200));
    if (body.length > 0 && type === ETH_P_IP) body[0] = 0x45;
    if (body.length > 0 && type === ETH_P_IPV6) body[0] = 0x60;
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(type, 12);
    return Buffer.concat([eth, body]);
  }

  next(): Buffer {
    const r = this.rnd();
    if (r < 0.35) return this.built();
    if (r < 0.8) return this.mutate(this.built());
    return this.random();
  }
}

const reason = skipUnlessCi(bpfSkipReason());
if (reason) t.test('the data path fuzzer', { skip: reason }, async () => {});
else run();

function run() {
  const control = testControl(t, 'fuzz', 65536);
  control.apply(
    parseConfig({
      conf: { buckets: 65536 },
      vips: [
        { prefix: VIP4, port: 80, target_port: 8080, backends: BACKENDS4 },
        { prefix: VIP4, protocol: 'udp', port: 53, backends: [BACKENDS4[0]] },
        { prefix: VIP6, port: 80, target_port: 8080, backends: BACKENDS6 },
        { prefix: VIP46, port: 80, target_port: 80, encap: 'nat46', backends: BACKENDS46 },
      ],
    }),
    { dryRun: false },
  );

  t.test(`${FRAMES} frames (seed 0x${SEED.toString(16)}): verdicts, untouched frames, checksums`, async (t) => {
    const frames = new Frames(prng(SEED));
    const failures: string[] = [];
    const fail = (what: string, f: Buffer) => failures.length < 10 && failures.push(`${what}: ${f.toString('hex')}`);
    const verdicts = new Map<number, number>();
    let untouched = 0;
    let rewritten = 0;
    for (let i = 0; i < FRAMES; i++) {
      const f = frames.next();
      const r = testRun(control.dp.progFd, f);
      verdicts.set(r.retval, (verdicts.get(r.retval) ?? 0) + 1);
      if (![XDP.DROP, XDP.PASS, XDP.TX, XDP.REDIRECT].includes(r.retval as 1 | 2 | 3 | 4)) fail(`verdict ${r.retval}`, f);
      if (notOurs(f)) {
        untouched++;
        if (r.retval !== XDP.PASS || !r.data.equals(f)) fail(`not kpbpf's, yet verdict ${r.retval}${r.data.equals(f) ? '' : ', bytes changed'}`, f);
        continue;
      }
      if (r.retval === XDP.DROP || r.data.equals(f)) continue;
      rewritten++;
      try {
        parsePacket(r.data);
      } catch (e) {
        fail(`rewritten into a frame that does not parse (${(e as Error).message})`, f);
        continue;
      }
      const before = checksumsOf(f);
      if (before?.ip && before.l4) {
        const after = checksumsOf(r.data);
        if (after && !(after.ip && after.l4)) fail(`valid checksums in, ${after.ip ? 'L4' : 'IP'} checksum wrong out`, f);
      }
    }
    t.same(failures, [], 'every frame as the oracle says');
    t.ok(untouched > FRAMES / 10, `${untouched} frames were not kpbpf's`);
    t.ok(rewritten > FRAMES / 20, `${rewritten} were rewritten (verdicts: ${[...verdicts].map(([v, n]) => `${v}:${n}`).join(' ')})`);
  });

  t.test('no reply entry without its forward record', async (t) => {
    const entries = [...control.dp.maps.ct.entries()];
    const forward = new Set(entries.filter(([k]) => (k.dir ?? 0) === codecs.KP_DIR.orig).map(([k]) => key(k)));
    const orphans = entries.filter(([k, v]) => k.dir === codecs.KP_DIR.reply && !forward.has(key({ saddr: v.clientAddr || k.daddr, daddr: v.vipAddr, sport: v.clientPort, dport: v.vipPort, proto: k.proto })));
    t.ok(forward.size > 100, `${forward.size} connections made`);
    t.same(orphans.slice(0, 5).map(([k, v]) => ({ k, v })), [], 'every reply entry leads to its connection');
  });
}

const key = (k: codecs.FlowKey) => `${k.saddr}|${k.daddr}|${k.sport}|${k.dport}|${k.proto}`;
