// Address and prefix text → canonical text, so that "2001:DB8:0::1" and "2001:db8::1" (or
// "::ffff:198.18.0.1" and "198.18.0.1", which the data plane stores identically) compare equal.
import { isIPv4, isIPv6 } from 'node:net';
import { KpError } from '../errors.js';
import { addrToBytes, bytesToAddr, ipv4Value, isIPv4Mapped, V4_MAPPED_BITS } from '../maps/addr.js';

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

/** Parse results by text: a config of 10k services names the same 80k addresses in validation and
 * in the diff, and parsing dominated `apply` time. Results are immutable; each cache is bounded. */
const PARSE_CACHE_MAX = 1 << 20;

export function memo<T>(f: (s: string) => T): (s: string) => T {
  const cache = new Map<string, T>();
  return (s) => {
    let r = cache.get(s);
    if (r === undefined) {
      if (cache.size >= PARSE_CACHE_MAX) cache.clear();
      r = f(s);
      cache.set(s, r);
    }
    return r;
  };
}

const parseAddressMemo = memo(parseAddressUncached);

/** A dotted quad without leading zeros, which is its own canonical text; its bytes are made when
 * asked for (validation and the diff parse 80k backend addresses and read only their text). */
class DottedQuad implements ParsedAddress {
  readonly family = 4 as const;
  constructor(
    readonly text: string,
    private readonly value: number,
  ) {}

  get bytes(): Uint8Array {
    const v = this.value;
    return Uint8Array.of(v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);
  }
}

/** Parse a host address; returns an error text (without path) on failure. A dotted quad is read
 * directly (faster than a cache lookup of its text); anything else goes through the cache. */
export function parseAddress(s: string): ParsedAddress | string {
  const v4 = ipv4Value(s);
  return v4 === undefined ? parseAddressMemo(s) : new DottedQuad(s, v4);
}

function parseAddressUncached(s: string): ParsedAddress | string {
  if (!isIPv4(s) && (!isIPv6(s) || s.includes('%'))) {
    return `'${s}' is not an IPv4 (198.18.0.1) or IPv6 (2001:db8::1) address`;
  }
  const bytes = addrToBytes(s); // the data plane's own 16-byte form; text back from it is canonical
  const text = bytesToAddr(bytes);
  return isIPv4Mapped(bytes) ? { family: 4, bytes: Uint8Array.from(bytes.subarray(12)), text } : { family: 6, bytes: Uint8Array.from(bytes), text };
}

/** Parse "addr[/len]" (no length = a host prefix); host bits must be zero. */
export const parsePrefix: (s: string) => ParsedPrefix | string = memo(parsePrefixUncached);

function parsePrefixUncached(s: string): ParsedPrefix | string {
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
  const bytes = a.bytes;
  const masked = bytes.slice();
  for (let bit = len; bit < masked.length * 8; bit++) masked[bit >> 3] &= ~(0x80 >> (bit & 7));
  if (masked.some((x, i) => x !== bytes[i])) {
    const net = a.family === 4 ? masked.join('.') : bytesToAddr(Buffer.from(masked));
    return `host bits are set after /${len} (the network is ${net}/${len})`;
  }
  return { family: a.family, bytes, text: a.text, len, prefix: `${a.text}/${len}` };
}

/** Canonical address text; throws KP_ERR_ARG on an invalid address. */
export function canonicalAddress(s: string): string {
  const a = parseAddress(s);
  if (typeof a === 'string') throw new KpError('KP_ERR_ARG', `invalid address: ${a}`);
  return a.text;
}

/** Canonical "addr/len" text; throws KP_ERR_ARG on an invalid prefix. */
export function canonicalPrefix(s: string): string {
  const p = parsePrefix(s);
  if (typeof p === 'string') throw new KpError('KP_ERR_ARG', `invalid prefix '${s}': ${p}`);
  return p.prefix;
}
