// Test packets: build Ethernet (+802.1Q) / IPv4 or IPv6 / TCP or UDP frames from fields, parse them
// back, and verify checksums computed from scratch (RFC 1071; RFC 8200's pseudo-header for IPv6),
// independently of the data plane's incremental updates.
import { isIPv4, isIPv6 } from 'node:net';

export const ETH_P_IP = 0x0800;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMPV6 = 58;
/** IPv6 extension headers kpbpf walks (RFC 8200 4.1): hop-by-hop, routing, destination options; fragment. */
export const IPV6_HOPOPTS = 0;
export const IPV6_ROUTING = 43;
export const IPV6_FRAGMENT = 44;
export const IPV6_DSTOPTS = 60;
export const ETH_P_ARP = 0x0806;
export const ETH_P_8021Q = 0x8100;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMP = 1;
export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;
const ETH_HLEN = 14;
const VLAN_HLEN = 4;
const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
const TCP_HLEN = 20;
const UDP_HLEN = 8;
const IP_MF = 0x2000;
const IP_DF = 0x4000;

export interface PacketSpec {
  srcMac?: string;
  dstMac?: string;
  /** VLAN id: adds one 802.1Q tag */
  vlan?: number;
  src: string;
  dst: string;
  /** 'tcp', 'udp' or an IP protocol number (then `payload` is the whole L4 part) */
  proto: 'tcp' | 'udp' | number;
  sport?: number;
  dport?: number;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** fragment offset in 8-byte units */
  fragOffset?: number;
  /** IPv4 options, padded by the caller to a multiple of 4 bytes */
  ipOptions?: Buffer;
  tcpFlags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  payload?: Buffer;
  /** UDP only: send checksum 0 ("none") instead of computing it */
  udpNoChecksum?: boolean;
  /** CHECKSUM_PARTIAL as a sender with TX checksum offload leaves it: the L4 check field holds
   * fold(pseudo-header sum), uncomplemented; completeChecksum() finishes it like a NIC would */
  l4Partial?: boolean;
  /** IPv6 only: extension headers between the IPv6 header and the L4 one, in order (a fragment
   * header takes `fragOffset`, `mf` and `id`; the others are 8 bytes of padding options) */
  ext6?: number[];
  /** IPv6 only: the flow label */
  flowLabel?: number;
}

export interface ParsedPacket {
  dstMac: string;
  srcMac: string;
  vlan?: number;
  ethertype: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  df: boolean;
  mf: boolean;
  fragOffset: number;
  ttl: number;
  proto: number;
  ipChecksum: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  l4Checksum?: number;
  tcpFlags?: number;
  seq?: number;
  ack?: number;
  payload: Buffer;
}

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6) throw new Error(`bad MAC ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** 16 bytes of an IPv6 address. */
export function v6ToBytes(a: string): Buffer {
  if (!isIPv6(a)) throw new Error(`not an IPv6 address: ${a}`);
  let [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const words = (x: string | undefined) => (x ? x.split(':') : []);
  const h = words(head);
  const t = words(tail);
  if (t.length && t[t.length - 1].includes('.')) {
    const v4 = v4ToBytes(t.pop()!);
    t.push(v4.readUInt16BE(0).toString(16), v4.readUInt16BE(2).toString(16));
  }
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), 2 * i));
  return out;
}

/** The RFC 5952 text of 16 bytes (zeros compressed, lower case). */
export function bytesToV6(b: Buffer): string {
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(2 * i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function v4ToBytes(a: string): Buffer {
  if (!isIPv4(a)) throw new Error(`not an IPv4 address: ${a}`);
  return Buffer.from(a.split('.').map(Number));
}

function bytesToV4(b: Buffer): string {
  return [...b].join('.');
}

/** Ones' complement fold of a non-negative sum to 16 bits. */
export function csumFold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** RFC 1071 Internet checksum of `data` (odd length padded with zero), plus a 32-bit partial `initial`. */
export function inetChecksum(data: Buffer, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1] << 8;
  return ~csumFold(sum) & 0xffff;
}

/** Ones' complement sum of the IPv4 (4-byte addresses) or IPv6 (16-byte, RFC 8200 8.1) pseudo-header, not folded or complemented. */
function pseudoHeaderSum(src: Buffer, dst: Buffer, proto: number, l4Len: number): number {
  const a = src.length; // 4 or 16
  const ph = Buffer.alloc(a === 16 ? 40 : 12);
  src.copy(ph, 0);
  dst.copy(ph, a);
  if (a === 16) ph.writeUInt32BE(l4Len, 32); // IPv6: a 32-bit length, then zeros and the next header
  else ph.writeUInt16BE(l4Len, 10);
  ph.writeUInt8(proto, ph.length - (a === 16 ? 1 : 3));
  let sum = 0;
  for (let i = 0; i < ph.length; i += 2) sum += ph.readUInt16BE(i);
  return sum;
}

/** Ethernet header (+ optional 802.1Q tag) in front of `payload`. */
export function ethernet(ethertype: number, payload: Buffer, opts: { srcMac?: string; dstMac?: string; vlan?: number } = {}): Buffer {
  const hdr = Buffer.alloc(ETH_HLEN + (opts.vlan !== undefined ? VLAN_HLEN : 0));
  macToBytes(opts.dstMac ?? '02:00:00:00:00:02').copy(hdr, 0);
  macToBytes(opts.srcMac ?? '02:00:00:00:00:01').copy(hdr, 6);
  if (opts.vlan !== undefined) {
    hdr.writeUInt16BE(ETH_P_8021Q, 12);
    hdr.writeUInt16BE(opts.vlan & 0x0fff, 14);
    hdr.writeUInt16BE(ethertype, 16);
  } else {
    hdr.writeUInt16BE(ethertype, 12);
  }
  return Buffer.concat([hdr, payload]);
}

function l4Segment(spec: PacketSpec, src: Buffer, dst: Buffer): { proto: number; seg: Buffer } {
  const payload = spec.payload ?? Buffer.alloc(0);
  if (spec.proto === 'tcp') {
    const seg = Buffer.alloc(TCP_HLEN + payload.length);
    seg.writeUInt16BE(spec.sport ?? 0, 0);
    seg.writeUInt16BE(spec.dport ?? 0, 2);
    seg.writeUInt32BE(spec.seq ?? 0, 4);
    seg.writeUInt32BE(spec.ack ?? 0, 8);
    seg.writeUInt8((TCP_HLEN / 4) << 4, 12);
    seg.writeUInt8(spec.tcpFlags ?? TCP_SYN, 13);
    seg.writeUInt16BE(spec.window ?? 64240, 14);
    payload.copy(seg, TCP_HLEN);
    const ph = pseudoHeaderSum(src, dst, IPPROTO_TCP, seg.length);
    seg.writeUInt16BE(spec.l4Partial ? csumFold(ph) : inetChecksum(seg, ph), 16);
    return { proto: IPPROTO_TCP, seg };
  }
  if (spec.proto === 'udp') {
    const seg = Buffer.alloc(UDP_HLEN + payload.length);
    seg.writeUInt16BE(spec.sport ?? 0, 0);
    seg.writeUInt16BE(spec.dport ?? 0, 2);
    seg.writeUInt16BE(seg.length, 4);
    payload.copy(seg, UDP_HLEN);
    const ph = pseudoHeaderSum(src, dst, IPPROTO_UDP, seg.length);
    if (spec.l4Partial) {
      seg.writeUInt16BE(csumFold(ph), 6);
    } else if (!spec.udpNoChecksum) {
      // (an IPv6 UDP checksum of 0 is illegal, RFC 8200 8.1: udpNoChecksum crafts one)
      const c = inetChecksum(seg, ph);
      seg.writeUInt16BE(c === 0 ? 0xffff : c, 6);
    }
    return { proto: IPPROTO_UDP, seg };
  }
  return { proto: spec.proto, seg: payload };
}

/** An IPv6 frame: the header, the extension headers of spec.ext6, then TCP/UDP (or the payload). */
function buildPacket6(spec: PacketSpec): Buffer {
  const src = v6ToBytes(spec.src);
  const dst = v6ToBytes(spec.dst);
  const { proto, seg } = l4Segment(spec, src, dst);
  const ext = spec.ext6 ?? [];
  const exts = ext.map((type, i) => {
    const h = Buffer.alloc(8);
    h.writeUInt8(i + 1 < ext.length ? ext[i + 1] : proto, 0);
    if (type === IPV6_FRAGMENT) {
      h.writeUInt16BE((((spec.fragOffset ?? 0) & 0x1fff) << 3) | (spec.mf ? 1 : 0), 2);
      h.writeUInt32BE(spec.id ?? 0x1234, 4);
    } else {
      h.writeUInt8(0, 1); // 8 bytes: next header, length 0, a PadN option of 4 bytes
      h.writeUInt8(1, 2);
      h.writeUInt8(4, 3);
    }
    return h;
  });
  const ip = Buffer.alloc(IPV6_HLEN);
  ip.writeUInt32BE((6 << 28) | ((spec.tos ?? 0) << 20) | ((spec.flowLabel ?? 0) & 0xfffff), 0);
  ip.writeUInt16BE(exts.reduce((n, h) => n + h.length, 0) + seg.length, 4);
  ip.writeUInt8(ext.length ? ext[0] : proto, 6);
  ip.writeUInt8(spec.ttl ?? 64, 7);
  src.copy(ip, 8);
  dst.copy(ip, 24);
  return ethernet(ETH_P_IPV6, Buffer.concat([ip, ...exts, seg]), spec);
}

/** A complete frame with correct IPv4 (or, for IPv6 addresses, IPv6) and L4 checksums. */
export function buildPacket(spec: PacketSpec): Buffer {
  if (spec.src.includes(':')) return buildPacket6(spec);
  const src = v4ToBytes(spec.src);
  const dst = v4ToBytes(spec.dst);
  const opts = spec.ipOptions ?? Buffer.alloc(0);
  if (opts.length % 4) throw new Error('IPv4 options must be a multiple of 4 bytes');
  const { proto, seg } = l4Segment(spec, src, dst);
  const ip = Buffer.alloc(IPV4_HLEN + opts.length);
  ip.writeUInt8(0x40 | (ip.length / 4), 0);
  ip.writeUInt8(spec.tos ?? 0, 1);
  ip.writeUInt16BE(ip.length + seg.length, 2);
  ip.writeUInt16BE(spec.id ?? 0x1234, 4);
  ip.writeUInt16BE((spec.df ?? true ? IP_DF : 0) | (spec.mf ? IP_MF : 0) | ((spec.fragOffset ?? 0) & 0x1fff), 6);
  ip.writeUInt8(spec.ttl ?? 64, 8);
  ip.writeUInt8(proto, 9);
  src.copy(ip, 12);
  dst.copy(ip, 16);
  opts.copy(ip, IPV4_HLEN);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return ethernet(ETH_P_IP, Buffer.concat([ip, seg]), spec);
}

/** Offsets of the headers of a frame built by buildPacket (or any well-formed one). */
export function layout(buf: Buffer): { l3: number; l4: number; end: number; vlan?: number; ethertype: number } {
  let l3 = ETH_HLEN;
  let ethertype = buf.readUInt16BE(12);
  let vlan: number | undefined;
  if (ethertype === ETH_P_8021Q || ethertype === 0x88a8) {
    vlan = buf.readUInt16BE(14) & 0x0fff;
    ethertype = buf.readUInt16BE(16);
    l3 += VLAN_HLEN;
  }
  if (ethertype === ETH_P_IPV6) {
    const { l4 } = walk6(buf, l3);
    return { l3, l4, end: Math.min(buf.length, l3 + IPV6_HLEN + buf.readUInt16BE(l3 + 4)), vlan, ethertype };
  }
  if (ethertype !== ETH_P_IP) return { l3, l4: l3, end: buf.length, vlan, ethertype };
  const ihl = buf[l3] & 0x0f;
  const end = Math.min(buf.length, l3 + buf.readUInt16BE(l3 + 2));
  return { l3, l4: l3 + ihl * 4, end, vlan, ethertype };
}

/** The upper-layer protocol of an IPv6 packet and where it starts, past its extension headers. */
function walk6(buf: Buffer, l3: number): { proto: number; l4: number; frag?: { offset: number; mf: boolean; id: number } } {
  let next = buf[l3 + 6];
  let off = l3 + IPV6_HLEN;
  let frag: { offset: number; mf: boolean; id: number } | undefined;
  while ([IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS, IPV6_FRAGMENT].includes(next) && off + 8 <= buf.length) {
    if (next === IPV6_FRAGMENT) {
      const w = buf.readUInt16BE(off + 2);
      frag = { offset: w >> 3, mf: (w & 1) === 1, id: buf.readUInt32BE(off + 4) };
    }
    const len = next === IPV6_FRAGMENT ? 8 : (buf[off + 1] + 1) * 8;
    next = buf[off];
    off += len;
  }
  return { proto: next, l4: off, frag };
}

export function parsePacket(buf: Buffer): ParsedPacket {
  if (layout(buf).ethertype === ETH_P_IPV6) return parsePacket6(buf);
  const { l3, l4, end, vlan, ethertype } = layout(buf);
  if (ethertype !== ETH_P_IP) throw new Error(`not IPv4: ethertype 0x${ethertype.toString(16)}`);
  const frag = buf.readUInt16BE(l3 + 6);
  const p: ParsedPacket = {
    dstMac: bytesToMac(buf.subarray(0, 6)),
    srcMac: bytesToMac(buf.subarray(6, 12)),
    vlan,
    ethertype,
    ihl: buf[l3] & 0x0f,
    tos: buf[l3 + 1],
    totalLength: buf.readUInt16BE(l3 + 2),
    id: buf.readUInt16BE(l3 + 4),
    df: (frag & IP_DF) !== 0,
    mf: (frag & IP_MF) !== 0,
    fragOffset: frag & 0x1fff,
    ttl: buf[l3 + 8],
    proto: buf[l3 + 9],
    ipChecksum: buf.readUInt16BE(l3 + 10),
    src: bytesToV4(buf.subarray(l3 + 12, l3 + 16)),
    dst: bytesToV4(buf.subarray(l3 + 16, l3 + 20)),
    payload: buf.subarray(l4, end),
  };
  if (p.proto === IPPROTO_TCP || p.proto === IPPROTO_UDP) {
    p.sport = buf.readUInt16BE(l4);
    p.dport = buf.readUInt16BE(l4 + 2);
  }
  if (p.proto === IPPROTO_TCP) {
    p.seq = buf.readUInt32BE(l4 + 4);
    p.ack = buf.readUInt32BE(l4 + 8);
    p.tcpFlags = buf[l4 + 13];
    p.l4Checksum = buf.readUInt16BE(l4 + 16);
    p.payload = buf.subarray(l4 + (buf[l4 + 12] >> 4) * 4, end);
  } else if (p.proto === IPPROTO_UDP) {
    p.l4Checksum = buf.readUInt16BE(l4 + 6);
    p.payload = buf.subarray(l4 + UDP_HLEN, end);
  }
  return p;
}

function parsePacket6(buf: Buffer): ParsedPacket {
  const { l3, end, vlan, ethertype } = layout(buf);
  const { proto, l4, frag } = walk6(buf, l3);
  const w = buf.readUInt32BE(l3);
  const p: ParsedPacket = {
    dstMac: bytesToMac(buf.subarray(0, 6)),
    srcMac: bytesToMac(buf.subarray(6, 12)),
    vlan,
    ethertype,
    ihl: 0,
    tos: (w >> 20) & 0xff,
    totalLength: IPV6_HLEN + buf.readUInt16BE(l3 + 4),
    id: frag?.id ?? 0,
    df: false,
    mf: frag?.mf ?? false,
    fragOffset: frag?.offset ?? 0,
    ttl: buf[l3 + 7],
    proto,
    ipChecksum: 0,
    src: bytesToV6(buf.subarray(l3 + 8, l3 + 24)),
    dst: bytesToV6(buf.subarray(l3 + 24, l3 + 40)),
    payload: buf.subarray(l4, end),
  };
  if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && !(frag && frag.offset)) {
    p.sport = buf.readUInt16BE(l4);
    p.dport = buf.readUInt16BE(l4 + 2);
    if (proto === IPPROTO_TCP) {
      p.seq = buf.readUInt32BE(l4 + 4);
      p.ack = buf.readUInt32BE(l4 + 8);
      p.tcpFlags = buf[l4 + 13];
      p.l4Checksum = buf.readUInt16BE(l4 + 16);
      p.payload = buf.subarray(l4 + (buf[l4 + 12] >> 4) * 4, end);
    } else {
      p.l4Checksum = buf.readUInt16BE(l4 + 6);
      p.payload = buf.subarray(l4 + UDP_HLEN, end);
    }
  }
  return p;
}

/** Recomputes both checksums from scratch; a UDP checksum of 0 (none) counts as valid for IPv4 and
 * as invalid for IPv6 (RFC 8200 8.1). IPv6 has no header checksum (`ip` is then always true). */
export function verifyChecksums(buf: Buffer): { ip: boolean; l4: boolean } {
  if (layout(buf).ethertype === ETH_P_IPV6) {
    const { l3, l4, end } = layout(buf);
    const { proto } = walk6(buf, l3);
    const seg = buf.subarray(l4, end);
    if (proto !== IPPROTO_UDP && proto !== IPPROTO_TCP && proto !== IPPROTO_ICMPV6) return { ip: true, l4: true };
    if (proto === IPPROTO_UDP && seg.readUInt16BE(6) === 0) return { ip: true, l4: false };
    return { ip: true, l4: inetChecksum(seg, pseudoHeaderSum(buf.subarray(l3 + 8, l3 + 24), buf.subarray(l3 + 24, l3 + 40), proto, seg.length)) === 0 };
  }
  const { l3, l4, end } = layout(buf);
  const ip = inetChecksum(buf.subarray(l3, l4)) === 0;
  const proto = buf[l3 + 9];
  const seg = buf.subarray(l4, end);
  const src = buf.subarray(l3 + 12, l3 + 16);
  const dst = buf.subarray(l3 + 16, l3 + 20);
  if (proto === IPPROTO_UDP && seg.readUInt16BE(6) === 0) return { ip, l4: true };
  if (proto !== IPPROTO_UDP && proto !== IPPROTO_TCP) return { ip, l4: true };
  return { ip, l4: inetChecksum(seg, pseudoHeaderSum(src, dst, proto, seg.length)) === 0 };
}

/** Offset of the TCP/UDP check field in a frame, or undefined for other protocols. */
function l4CsumOffset(buf: Buffer): number | undefined {
  const { l3, l4 } = layout(buf);
  const proto = buf[l3 + 9];
  if (proto === IPPROTO_TCP) return l4 + 16;
  if (proto === IPPROTO_UDP) return l4 + 6;
  return undefined;
}

/** fold(pseudo-header sum) of a TCP/UDP frame as it is: what a CHECKSUM_PARTIAL field holds. */
export function pseudoHeaderFold(buf: Buffer): number {
  const { l3, l4, end } = layout(buf);
  return csumFold(pseudoHeaderSum(buf.subarray(l3 + 12, l3 + 16), buf.subarray(l3 + 16, l3 + 20), buf[l3 + 9], end - l4));
}

/** The L4 check field of a TCP/UDP frame. */
export function l4Checksum(buf: Buffer): number {
  const off = l4CsumOffset(buf);
  if (off === undefined) throw new Error('not TCP/UDP');
  return buf.readUInt16BE(off);
}

/** Finishes a CHECKSUM_PARTIAL frame as the NIC or skb_checksum_help would: the checksum of the
 * segment, starting from the field's value, complemented into the field. Returns a copy. */
export function completeChecksum(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  const off = l4CsumOffset(out);
  if (off === undefined) throw new Error('not TCP/UDP');
  const { l4, end } = layout(out);
  const c = inetChecksum(out.subarray(l4, end));
  out.writeUInt16BE(out[layout(out).l3 + 9] === IPPROTO_UDP && c === 0 ? 0xffff : c, off);
  return out;
}

/** The ICMP error a router sends about `orig` (a frame built here), as kpbpf writes it: same MACs
 * and tag, IPv4 from orig's destination to its source (TOS 0xc0, id 0, TTL 64, no DF), ICMP
 * type/code with `rest` (4 bytes: unused, or the next-hop MTU), quoting orig's IP header and the
 * first `quoteL4` bytes after it (8, as RFC 792 asks). Checksums from scratch. */
export function icmpError(orig: Buffer, type: number, code: number, rest: Buffer<ArrayBufferLike> = Buffer.alloc(4), outer: Partial<PacketSpec> = {}, quoteL4 = 8): Buffer {
  const p = parsePacket(orig);
  const { l3, l4 } = layout(orig);
  const icmp = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, orig.subarray(l3, l4 + quoteL4)]);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  return buildPacket({ srcMac: p.srcMac, dstMac: p.dstMac, vlan: p.vlan, src: p.dst, dst: p.src, proto: IPPROTO_ICMP, payload: icmp, tos: 0xc0, id: 0, df: false, ttl: 64, ...outer });
}

/** The ICMPv6 error (RFC 4443) a router sends about `orig`, an IPv6 frame built here, as kpbpf
 * writes it: same MACs and tag, IPv6 from orig's destination to its source (traffic class 0, no
 * flow label, hop limit 64), type/code with `rest` (4 bytes: unused, or the MTU), quoting orig from
 * its IPv6 header on, up to the 1280-byte minimum MTU. The checksum from scratch over the
 * pseudo-header of the addresses in `outer` (or the swapped ones). */
export function icmp6Error(orig: Buffer, type: number, code: number, rest: Buffer<ArrayBufferLike> = Buffer.alloc(4), outer: Partial<PacketSpec> = {}): Buffer {
  const p = parsePacket(orig);
  const { l3, end } = layout(orig);
  const msg = Buffer.concat([Buffer.from([type, code, 0, 0]), rest, orig.subarray(l3, Math.min(end, l3 + 1280 - 48))]);
  const src = outer.src ?? p.dst;
  const dst = outer.dst ?? p.src;
  msg.writeUInt16BE(inetChecksum(msg, pseudoHeaderSum(v6ToBytes(src), v6ToBytes(dst), IPPROTO_ICMPV6, msg.length)), 2);
  return buildPacket({ srcMac: p.srcMac, dstMac: p.dstMac, vlan: p.vlan, proto: IPPROTO_ICMPV6, payload: msg, ttl: 64, ...outer, src, dst });
}

/** A 32-bit word in network order (ICMPv6 packet too big's MTU). */
export function word32(v: number): Buffer<ArrayBufferLike> {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v, 0);
  return b;
}

/** The next-hop MTU word of a "fragmentation needed" (ICMP type 3 code 4). */
export function mtuWord(mtu: number): Buffer<ArrayBufferLike> {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(mtu, 2);
  return b;
}

/** ICMP checksum of a frame's ICMP message, and the quoted IPv4 header's checksum, from scratch. */
export function verifyIcmp(buf: Buffer): { icmp: boolean; quotedIp: boolean } {
  const { l4, end } = layout(buf);
  const msg = buf.subarray(l4, end);
  return { icmp: inetChecksum(msg) === 0, quotedIp: inetChecksum(msg.subarray(8, 8 + (msg[8] & 0x0f) * 4)) === 0 };
}

/** The fragments a sender makes of `spec`'s datagram (checksums complete first): the L4 segment
 * split after `firstLen` bytes (a multiple of 8), MF on the first, offset on the second. */
export function fragments(spec: PacketSpec, firstLen: number): [Buffer, Buffer] {
  if (firstLen % 8) throw new Error('fragment data must be a multiple of 8 bytes');
  const whole = buildPacket({ ...spec, df: false });
  const { l3, l4, end } = layout(whole);
  const seg = whole.subarray(l4, end);
  if (layout(whole).ethertype === ETH_P_IPV6) {
    // A fragment header (RFC 8200 4.5) after the IPv6 header, its next header the L4 protocol.
    const proto = walk6(whole, l3).proto;
    const part6 = (data: Buffer, mf: boolean, offset: number): Buffer =>
      buildPacket({ ...spec, ext6: [IPV6_FRAGMENT], mf, fragOffset: offset / 8, proto, payload: data });
    return [part6(seg.subarray(0, firstLen), true, 0), part6(seg.subarray(firstLen), false, firstLen)];
  }
  const part = (data: Buffer, mf: boolean, offset: number): Buffer =>
    buildPacket({ ...spec, df: false, mf, fragOffset: offset / 8, proto: whole[l3 + 9], payload: data, ipOptions: undefined });
  return [part(seg.subarray(0, firstLen), true, 0), part(seg.subarray(firstLen), false, firstLen)];
}
