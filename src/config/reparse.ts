// A config file that differs from the one applied last only inside one VIP's text is parsed as that
// VIP alone: a one-endpoint change among 10k services should not parse and check 2 MB again. The
// VIP gets every check of its own (schema, semantics, against the same conf) and the checks that
// involve other VIPs (identity, node port, health-check port) against an index of the rest. Anything
// else (a change across VIP texts, in conf or interfaces, a VIP that fails a check) returns
// undefined, and the caller parses the whole file, whose errors are the ones reported.
import type { KpVipConfig } from './types.js';
import { nodePortId, parseConfig, type ConfigSource } from './validate.js';
import { MAX_JSON_DEPTH, scanJsonText } from './jsonscan.js';

/** What other VIPs hold, by the keys the whole-file checks compare; values are VIP indexes. */
export interface CrossIndex {
  identity: Map<string, number>;
  nodePort: Map<string, number>;
  healthPort: Map<number, number>;
}

const identityKey = (v: KpVipConfig) => `${v.prefix} ${v.protocol} port ${v.port}`;
const nodePortKey = (v: KpVipConfig) => nodePortId(v.protocol, v.node_port, v.family);

export function crossIndex(vips: readonly KpVipConfig[]): CrossIndex {
  const x: CrossIndex = { identity: new Map(), nodePort: new Map(), healthPort: new Map() };
  vips.forEach((v, i) => {
    x.identity.set(identityKey(v), i);
    if (v.node_port) x.nodePort.set(nodePortKey(v), i);
    if (v.health_check_node_port) x.healthPort.set(v.health_check_node_port, i);
  });
  return x;
}

/** Does VIP `v` at index `i` clash with a VIP other than the one it replaces? */
function clashes(x: CrossIndex, i: number, v: KpVipConfig): boolean {
  const other = (held: number | undefined) => held !== undefined && held !== i;
  if (other(x.identity.get(identityKey(v)))) return true;
  if (v.node_port && other(x.nodePort.get(nodePortKey(v)))) return true;
  const hc = v.health_check_node_port;
  if (hc && other(x.healthPort.get(hc))) return true;
  // A health-check port is a TCP listener: never an IPv4 TCP node port (its own included).
  const tcpNodePort = (port: number) => {
    const held = x.nodePort.get(nodePortId('tcp', port, 4));
    return held !== undefined && held !== i;
  };
  if (hc && (tcpNodePort(hc) || (v.protocol === 'tcp' && v.family === 4 && v.node_port === hc))) return true;
  if (v.protocol === 'tcp' && v.family === 4 && v.node_port && other(x.healthPort.get(v.node_port))) return true;
  return false;
}

function replaceIn(x: CrossIndex, i: number, old: KpVipConfig, v: KpVipConfig): void {
  if (x.identity.get(identityKey(old)) === i) x.identity.delete(identityKey(old));
  if (old.node_port && x.nodePort.get(nodePortKey(old)) === i) x.nodePort.delete(nodePortKey(old));
  if (old.health_check_node_port && x.healthPort.get(old.health_check_node_port) === i) x.healthPort.delete(old.health_check_node_port);
  x.identity.set(identityKey(v), i);
  if (v.node_port) x.nodePort.set(nodePortKey(v), i);
  if (v.health_check_node_port) x.healthPort.set(v.health_check_node_port, i);
}

/** Where two files first differ (start), and where that difference ends in each. */
export interface ChangedRegion {
  start: number;
  endA: number;
  endB: number;
}

/** Where two files first differ, and how many bytes they share at their ends after that. */
export function changedRegion(a: Uint8Array, b: Uint8Array): ChangedRegion {
  const A = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const B = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const n = Math.min(A.length, B.length);
  // Chunks first (a memory compare each), then bytes.
  const CHUNK = 16384;
  let p = 0;
  while (p + CHUNK <= n && A.compare(B, p, p + CHUNK, p, p + CHUNK) === 0) p += CHUNK;
  while (p < n && A[p] === B[p]) p++;
  let q = 0;
  const room = n - p;
  while (q + CHUNK <= room && A.compare(B, B.length - q - CHUNK, B.length - q, A.length - q - CHUNK, A.length - q) === 0) q += CHUNK;
  while (q < room && A[A.length - 1 - q] === B[B.length - 1 - q]) q++;
  return { start: p, endA: A.length - q, endB: B.length - q };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The last VIP whose text starts at or before `pos`, or -1 (starts ascend: every VIP of a config
 * that passed is an object). */
function vipAt(starts: readonly number[], pos: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid] <= pos) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

export interface Reparsed {
  source: ConfigSource;
  /** the VIP whose text changed */
  index: number;
  before: KpVipConfig;
}

/**
 * The file `bytes`, which is `prevBytes` (parsed as `prev`) with one VIP's text replaced, or
 * undefined (parse the whole file). On success `index` is updated to the new config; on undefined
 * it is untouched.
 */
export function reparseOneVip(prev: ConfigSource, index: CrossIndex, prevBytes: Uint8Array, bytes: Uint8Array, region?: ChangedRegion): Reparsed | undefined {
  const r = region ?? changedRegion(prevBytes, bytes);
  const i = vipAt(prev.vipStarts, r.start);
  if (i < 0 || prev.vipStarts[i] < 0) return undefined;
  const start = prev.vipStarts[i];
  const end = start + Buffer.byteLength(prev.vipTexts[i]);
  if (r.endA > end) return undefined; // the change goes past this VIP's text
  const delta = bytes.length - prevBytes.length;
  const raw = bytes.subarray(start, end + delta);
  if (raw[0] !== 123 || raw[raw.length - 1] !== 125) return undefined;
  let vipText: string;
  let json: unknown;
  try {
    vipText = utf8.decode(raw);
    json = JSON.parse(vipText); // one value, or it throws: the rest of the file is as it was
  } catch {
    return undefined;
  }
  // Its own structure: a VIP sits at depth 3 (the document, "vips", itself).
  if (scanJsonText(vipText, MAX_JSON_DEPTH - 2).errors.length) return undefined;
  let vip: KpVipConfig;
  try {
    vip = parseConfig({ ...(prev.rawConf !== undefined ? { conf: prev.rawConf } : {}), vips: [json] }).vips[0];
  } catch {
    return undefined;
  }
  const before = prev.config.vips[i];
  if (clashes(index, i, vip)) return undefined;
  replaceIn(index, i, before, vip);
  const vips = prev.config.vips.slice();
  vips[i] = vip;
  const vipTexts = prev.vipTexts.slice();
  vipTexts[i] = vipText;
  const vipStarts = delta ? prev.vipStarts.map((s, j) => (j > i && s >= 0 ? s + delta : s)) : prev.vipStarts;
  return {
    source: { ...prev, config: { ...prev.config, vips }, vipTexts, vipStarts },
    index: i,
    before,
  };
}
