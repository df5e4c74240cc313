// Addresses as the data plane stores them: 16 bytes, IPv4 as ::ffff:a.b.c.d (RFC 4291 2.5.5.2).
import { isIPv4, isIPv6 } from 'node:net';
import { KpError } from '../errors.js';

export const ADDR_LEN = 16;
const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
/** Bits of the 128-bit space that an IPv4-mapped address's fixed prefix takes. */
export const V4_MAPPED_BITS = 96;

function argError(msg: string): KpError {
  return new KpError('KP_ERR_ARG', msg);
}

function v4Bytes(s: string, out: Buffer, off: number): void {
  s.split('.').forEach((p, i) => out.writeUInt8(Number(p), off + i));
}

/**
 * A dotted quad as its 32-bit value, or undefined: exactly what node:net's isIPv4 accepts (four
 * decimal parts of 0 to 255, no leading zeros), read without a regular expression or strings, since
 * a config of 10k services names 80k addresses.
 */
export function ipv4Value(s: string): number | undefined {
  const n = s.length;
  if (n < 7 || n > 15) return undefined;
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 255) return undefined;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return undefined; // a leading zero
      part = part * 10 + c - 48;
      if (++digits > 3) return undefined;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

/** '198.18.0.1' → ::ffff:198.18.0.1 as 16 bytes; IPv6 text as is. */
export function addrToBytes(s: string): Buffer {
  const out = Buffer.alloc(ADDR_LEN);
  writeAddr(s, out, 0);
  return out;
}

/** addrToBytes(s) written at out[off..off + 16), with nothing allocated for a dotted quad (a full
 * sync writes 80k backend addresses into kp_backends and kp_addrs). */
export function writeAddr(s: string, out: Buffer, off: number): void {
  const v4 = ipv4Value(s);
  if (v4 === undefined) return void addrToBytesSlow(s).copy(out, off);
  out.fill(0, off, off + 10);
  out[off + 10] = 0xff;
  out[off + 11] = 0xff;
  out.writeUInt32BE(v4, off + 12);
}

function addrToBytesSlow(s: string): Buffer {
  const out = Buffer.alloc(ADDR_LEN);
  if (isIPv4(s)) {
    V4_MAPPED_PREFIX.copy(out, 0);
    v4Bytes(s, out, 12);
    return out;
  }
  if (!isIPv6(s)) throw argError(`invalid IP address '${s}': expected IPv4 (198.18.0.1) or IPv6 (2001:db8::1)`);
  let text = s.split('%')[0];
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (m) {
    const q = Buffer.alloc(4);
    v4Bytes(m[2], q, 0);
    text = `${m[1]}${q.readUInt16BE(0).toString(16)}:${q.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function isIPv4Mapped(b: Buffer): boolean {
  return b.length === ADDR_LEN && b.subarray(0, 12).equals(V4_MAPPED_PREFIX);
}

/** 16 bytes → text: dotted quad for IPv4-mapped, RFC 5952 compressed IPv6 otherwise. */
export function bytesToAddr(b: Buffer): string {
  if (b.length !== ADDR_LEN) throw argError(`address must be ${ADDR_LEN} bytes, got ${b.length}`);
  if (isIPv4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const g = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  // Longest run (length >= 2) of zero groups, first one on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** The decimal number of s[from..] (1 to 3 digits, no sign), or undefined. */
function smallInt(s: string, from: number): number | undefined {
  const n = s.length - from;
  if (n < 1 || n > 3) return undefined;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    v = v * 10 + c;
  }
  return v;
}

export interface Prefix {
  /** the network address, host bits zero */
  addr: Buffer;
  /** prefix length in the 128-bit space (IPv4 /8 → 104) */
  len128: number;
  family: 4 | 6;
  /** canonical text, e.g. '90.0.0.0/8' */
  text: string;
}

/** '90.0.0.0/8', '2001:db8::/32', or a bare address (a host prefix). */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  // A dotted quad with a plain length (every ClusterIP of a full sync): read without regexps.
  const v4 = ipv4Value(addrText);
  const len4 = slash < 0 ? 32 : smallInt(s, slash + 1);
  if (v4 !== undefined && len4 !== undefined && len4 <= 32) {
    const hostBits = len4 === 32 ? 0 : (v4 % 2 ** (32 - len4));
    if (hostBits === 0) {
      const addr = Buffer.alloc(ADDR_LEN);
      writeAddr(addrText, addr, 0);
      return { addr, len128: V4_MAPPED_BITS + len4, family: 4, text: `${addrText}/${len4}` };
    }
  }
  const family: 4 | 6 = isIPv4(addrText) ? 4 : 6;
  if (!isIPv4(addrText) && !isIPv6(addrText)) {
    throw argError(`invalid prefix '${s}': '${addrText}' is not an IPv4 or IPv6 address`);
  }
  const maxLen = family === 4 ? 32 : 128;
  let len = maxLen;
  if (slash >= 0) {
    const lenText = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > maxLen) {
      throw argError(`invalid prefix '${s}': length '${lenText}' must be an integer from 0 to ${maxLen}`);
    }
    len = Number(lenText);
  }
  const addr = addrToBytes(addrText);
  const len128 = family === 4 ? V4_MAPPED_BITS + len : len;
  for (let bit = len128; bit < 128; bit++) {
    if (addr[bit >> 3] & (0x80 >> (bit & 7))) {
      throw argError(`invalid prefix '${s}': host bits are set after /${len} (did you mean ${bytesToAddr(maskPrefix(addr, len128))}/${len}?)`);
    }
  }
  return { addr, len128, family, text: `${bytesToAddr(addr)}/${len}` };
}

/** A copy of addr with every bit after len128 cleared. */
export function maskPrefix(addr: Buffer, len128: number): Buffer {
  const out = Buffer.from(addr);
  for (let bit = len128; bit < 128; bit++) out[bit >> 3] &= ~(0x80 >> (bit & 7));
  return out;
}

/** "addr:port", with IPv6 addresses in brackets (RFC 3986) so that the port stays readable. */
export function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}
