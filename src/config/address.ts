// Address and prefix text → canonical text, so that "2001:DB8:0::1" and "2001:db8::1" (or
// "::ffff:198.18.0.1" and "198.18.0.1", which the data plane stores identically) compare equal.
import { isIPv4, isIPv6 } from 'node:net';
import { KpError } from '../errors.js';

export interface ParsedAddress {
  family: 4 | 6;
  /** 4 bytes for IPv4 (and IPv4-mapped IPv6), 16 for IPv6. */
  bytes: Uint8Array;
  text: string;
}

export interface ParsedPrefix extends ParsedAddress {
  /** Prefix length within the family: 0..32 or 0..128. */
  len: number;
  /** "addr/len" */
  prefix: string;
}

const V4_MAPPED_BITS = 96;

function v4Bytes(s: string): Uint8Array {
  return Uint8Array.from(s.split('.').map(Number));
}

function v6Bytes(s: string): Uint8Array {
  let text = s;
  const quad = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const q = v4Bytes(quad[2]);
    text = `${quad[1]}${((q[0] << 8) | q[1]).toString(16)}:${((q[2] << 8) | q[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952: lowercase, no leading zeros, the longest run (>= 2) of zero groups as "::". */
function v6Text(b: Uint8Array): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i] << 8) | b[2 * i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j > i ? j - 1 : i;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function isV4Mapped(b: Uint8Array): boolean {
  return b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/** Parsed addresses by text: a config of 10k services names the same 80k addresses in validation and
 * in the diff, and parsing dominated `apply` time. Results are immutable; the cache is bounded. */
const parsed = new Map<string, ParsedAddress | string>();
const PARSE_CACHE_MAX = 1 << 20;

/** Parse a host address; returns an error text (without path) on failure. */
export function parseAddress(s: string): ParsedAddress | string {
  let r = parsed.get(s);
  if (r === undefined) {
    if (parsed.size >= PARSE_CACHE_MAX) parsed.clear();
    r = parseAddressUncached(s);
    parsed.set(s, r);
  }
  return r;
}

function parseAddressUncached(s: string): ParsedAddress | string {
  if (isIPv4(s)) {
    const bytes = v4Bytes(s);
    return { family: 4, bytes, text: bytes.join('.') };
  }
  if (!isIPv6(s) || s.includes('%')) {
    return `'${s}' is not an IPv4 (198.18.0.1) or IPv6 (2001:db8::1) address`;
  }
  const bytes = v6Bytes(s);
  if (isV4Mapped(bytes)) {
    const v4 = bytes.slice(12);
    return { family: 4, bytes: v4, text: v4.join('.') };
  }
  return { family: 6, bytes, text: v6Text(bytes) };
}

/** Parse "addr[/len]" (no length = a host prefix); host bits must be zero. */
export function parsePrefix(s: string): ParsedPrefix | string {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const a = parseAddress(addrText);
  if (typeof a === 'string') return a;
  const mapped = a.family === 4 && !isIPv4(addrText);
  const max = mapped ? 128 : a.family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    const lenText = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
      return `prefix length '${lenText}' must be an integer from 0 to ${max}`;
    }
    len = Number(lenText);
  }
  if (mapped) {
    if (len < V4_MAPPED_BITS) return `an IPv4-mapped prefix must be /${V4_MAPPED_BITS} or longer, got /${len}`;
    len -= V4_MAPPED_BITS;
  }
  const masked = a.bytes.slice();
  for (let bit = len; bit < masked.length * 8; bit++) masked[bit >> 3] &= ~(0x80 >> (bit & 7));
  if (masked.some((x, i) => x !== a.bytes[i])) {
    const net = a.family === 4 ? masked.join('.') : v6Text(masked);
    return `host bits are set after /${len} (the network is ${net}/${len})`;
  }
  return { ...a, len, prefix: `${a.text}/${len}` };
}

/** Canonical address text; throws KP_ERR_ARG on an invalid address. */
export function canonicalAddress(s: string): string {
  const a = parseAddress(s);
  if (typeof a === 'string') throw new KpError('KP_ERR_ARG', `invalid address: ${a}`);
  return a.text;
}

const canonicalPrefixes = new Map<string, string>();

/** Canonical "addr/len" text; throws KP_ERR_ARG on an invalid prefix. */
export function canonicalPrefix(s: string): string {
  const hit = canonicalPrefixes.get(s);
  if (hit !== undefined) return hit;
  if (canonicalPrefixes.size >= PARSE_CACHE_MAX) canonicalPrefixes.clear();
  const p = parsePrefix(s);
  if (typeof p === 'string') throw new KpError('KP_ERR_ARG', `invalid prefix '${s}': ${p}`);
  canonicalPrefixes.set(s, p.prefix);
  return p.prefix;
}
