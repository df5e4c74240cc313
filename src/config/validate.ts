// Config file → KpConfig: ajv schema plus semantic checks, every problem reported at once.
import { readFileSync } from 'node:fs';
import { KP_NODEPORT_MAX, KP_NODEPORT_MIN } from './types.js';
import type { CrossEncap, VipType } from './types.js';
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { KpError } from '../errors.js';
import { isPrime } from '../maglev/primes.js';
import { parseAddress, parsePrefix } from './address.js';
import { scanJsonText } from './jsonscan.js';
import { decodeConfigBytes, jsonErrorAt } from './jsonerror.js';
import { AFFINITY_TIMEOUT_DEFAULT } from './types.js';
import { KP_MASQ_PORT_MAX, KP_MASQ_PORT_MIN, parseMasqAddress, parseMasqPorts, parseNat46Prefix } from './masq.js';
import { localPortRange } from '../sys/host.js';
import { configSchema, PATTERN_TEXT } from './schema.js';
import { DEFAULT_TIMEOUTS, TIMEOUT_NAMES, type CtTimeouts } from './timeouts.js';
import {
  KP_CONFIG_DEFAULTS as D,
  KP_IFNAME_MAX,
  type KpBackendConfig,
  type KpConfig,
  type KpVipConfig,
  type L4Protocol,
  type XdpMode,
} from './types.js';

// ajv is CommonJS: under NodeNext its default export is the module object.
const Ajv = AjvModule.default;
type Which = 'whole' | 'head' | 'vip';
const compiled: Partial<Record<Which, ValidateFunction>> = {};
let ajv: InstanceType<typeof Ajv> | undefined;

/** The whole schema; and for a reparse that reuses VIPs, everything but the VIPs, and one VIP.
 * Each is compiled when first used: a daemon's first apply needs only the whole one. */
function validator(which: Which): ValidateFunction {
  const done = compiled[which];
  if (done) return done;
  ajv ??= new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true });
  const { vips, ...rest } = configSchema.properties;
  const schema =
    which === 'whole' ? configSchema : which === 'head' ? { ...configSchema, $id: `${configSchema.$id}#head`, properties: { ...rest, vips: { type: 'array' } } } : vips.items;
  return (compiled[which] = ajv.compile(schema));
}

/** Compile the validators a reload uses (one VIP's, and all but the VIPs'), so that the first
 * reload does not pay for it (about 40 ms); the daemon calls it once it has applied its file. */
export function prepareReloadValidators(): void {
  validator('vip');
  validator('head');
}

/** ajv's errors for a document; VIPs whose text passed before are not validated again. */
function schemaErrors(json: unknown, reuse?: VipReuse): string[] {
  if (!reuse) {
    const whole = validator('whole');
    return whole(json) ? [] : (whole.errors ?? []).map(formatAjvError);
  }
  const head = validator('head');
  const errs = head(json) ? [] : (head.errors ?? []).map(formatAjvError);
  arr(isObj(json) ? json.vips : undefined).forEach((vip, i) => {
    if (reuse.done[i]) return;
    const one = validator('vip');
    if (one(vip)) return;
    for (const e of one.errors ?? []) errs.push(formatAjvError({ ...e, instancePath: `/vips/${i}${e.instancePath}` }));
  });
  return errs;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
/** A value as an error message echoes it: JSON, cut short (a 3 MB wrong value is not echoed whole). */
export const SHOW_MAX = 80;
const show = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v) ?? String(v);
  return s.length <= SHOW_MAX ? s : `${s.slice(0, SHOW_MAX)}... (${s.length.toLocaleString('en-US')} characters)`;
};

/** Who holds a node port: one VIP per protocol, port and family (a dual-stack pair shares the
 * number). The whole-file checks and config/reparse.ts's index use this one key. */
export function nodePortId(protocol: string, port: number, family: 4 | 6): string {
  return `${protocol} ${port}${family === 6 ? ' (IPv6)' : ''}`;
}

/** A Maglev table size's error (the CLI and the file say the same), or undefined. */
export function newLenError(n: number): string | undefined {
  return isPrime(n) ? undefined : `must be a prime number, got ${n}`;
}

function formatAjvError(e: ErrorObject): string {
  const at = e.instancePath || '/';
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return `${e.instancePath}/${String(p.missingProperty)}: is required`;
    case 'additionalProperties':
      return `${e.instancePath}/${String(p.additionalProperty)}: unknown property`;
    case 'enum':
      return `${at}: must be one of ${(p.allowedValues as unknown[]).map(show).join(', ')}, got ${show(e.data)}`;
    case 'pattern':
      return `${at}: ${PATTERN_TEXT[String(p.pattern)] ?? e.message}, got ${show(e.data)}`;
    case 'type':
      return `${at}: must be ${String(p.type).replace(',', ' or ')}, got ${show(e.data)}`;
    default:
      return `${at}: ${e.message ?? e.keyword}, got ${show(e.data)}`;
  }
}

/** Order problems as they appear in the document (array indexes compared as numbers). */
function byPath(a: string, b: string): number {
  const pa = a.slice(0, a.indexOf(': ')).split('/');
  const pb = b.slice(0, b.indexOf(': ')).split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] === pb[i]) continue;
    const na = Number(pa[i]);
    const nb = Number(pb[i]);
    if (pa[i] !== '' && pb[i] !== '' && Number.isInteger(na) && Number.isInteger(nb)) return na - nb;
    return pa[i] < pb[i] ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** Checks ajv cannot do; each reads the raw document defensively (it may also be invalid). */
function semanticErrors(doc: unknown, reuse?: VipReuse): string[] {
  const errs: string[] = [];
  if (!isObj(doc)) return errs;
  const conf = doc.conf;
  if (isObj(conf) && Number.isInteger(conf.buckets)) {
    const b = conf.buckets as number;
    if (b > 0 && (b & (b - 1)) !== 0) errs.push(`/conf/buckets: must be a power of two, got ${b}`);
  }
  if (isObj(conf) && Number.isInteger(conf.timeout) && isObj(conf.timeouts) && Number.isInteger(conf.timeouts.udp)) {
    if (conf.timeout !== conf.timeouts.udp) {
      errs.push(`/conf/timeout: is the UDP timeout and contradicts /conf/timeouts/udp (${conf.timeout as number} vs ${conf.timeouts.udp as number})`);
    }
  }
  let [npMin, npMax] = [KP_NODEPORT_MIN, KP_NODEPORT_MAX];
  if (isObj(conf) && typeof conf.nodeport_range === 'string' && /^[0-9]{1,5}-[0-9]{1,5}$/.test(conf.nodeport_range)) {
    const [a, b] = conf.nodeport_range.split('-').map(Number);
    if (a < 1 || b > 65535 || a > b) errs.push(`/conf/nodeport_range: must be MIN-MAX with 1 <= MIN <= MAX <= 65535, got "${conf.nodeport_range}"`);
    else [npMin, npMax] = [a, b];
  }
  if (isObj(conf) && typeof conf.masquerade_address === 'string' && conf.masquerade_address) {
    const a = parseMasqAddress(conf.masquerade_address);
    if (typeof a !== 'string') errs.push(`/conf/masquerade_address: ${a.error}`);
  }
  if (isObj(conf) && typeof conf.nat46_prefix === 'string' && conf.nat46_prefix) {
    const p = parseNat46Prefix(conf.nat46_prefix);
    if (typeof p !== 'string') errs.push(`/conf/nat46_prefix: ${p.error}`);
  }
  if (isObj(conf) && typeof conf.masquerade_address6 === 'string' && conf.masquerade_address6) {
    const a = parseMasqAddress(conf.masquerade_address6, 6);
    if (typeof a !== 'string') errs.push(`/conf/masquerade_address6: ${a.error}`);
  }
  if (isObj(conf) && typeof conf.masquerade_ports === 'string' && /^[0-9]{1,5}-[0-9]{1,5}$/.test(conf.masquerade_ports)) {
    const r = parseMasqPorts(conf.masquerade_ports, [npMin, npMax], localPortRange());
    if (!Array.isArray(r)) errs.push(`/conf/masquerade_ports: ${r.error}`);
  }
  if (isObj(conf)) {
    arr(conf.nodeport_addresses).forEach((r, j) => {
      if (typeof r !== 'string' || r === '') return;
      const p = parsePrefix(r);
      if (typeof p === 'string') errs.push(`/conf/nodeport_addresses/${j}: ${p}`);
    });
  }
  const ifSeen = new Map<string, string>();
  arr(doc.interfaces).forEach((it, i) => {
    if (isObj(it) && it.mode === 'generic' && it.redirect === true) {
      errs.push(`/interfaces/${i}/redirect: not with mode generic (a redirected skb-mode frame keeps CHECKSUM_PARTIAL with a finished checksum); use mode native or auto, or redirect false`);
    }
    if (!isObj(it) || typeof it.name !== 'string') return;
    const path = `/interfaces/${i}/name`;
    if (it.name === '.' || it.name === '..') errs.push(`${path}: '${it.name}' is not a valid interface name`);
    else if (it.name.length <= KP_IFNAME_MAX && Buffer.byteLength(it.name) > KP_IFNAME_MAX) {
      errs.push(`${path}: must be at most ${KP_IFNAME_MAX} bytes, got ${Buffer.byteLength(it.name)}`);
    }
    const first = ifSeen.get(it.name);
    if (first) errs.push(`${path}: duplicate interface ${it.name} (first at ${first})`);
    else ifSeen.set(it.name, path);
  });
  const vipSeen = new Map<string, string>();
  const nodePortSeen = new Map<string, string>();
  const healthPortSeen = new Map<number, string>();
  const masqNone = isObj(conf) && conf.masquerade_address === 'none';
  let nat64Warned = false;
  arr(doc.vips).forEach((v, i) => {
    if (!isObj(v)) return;
    const at = `/vips/${i}`;
    const done = reuse?.done[i];
    if (done) {
      // Its text passed every check of its own before: only what involves other VIPs or conf.
      if (done.health_check_node_port) {
        const first = healthPortSeen.get(done.health_check_node_port);
        if (first) errs.push(`${at}/health_check_node_port: port ${done.health_check_node_port} is already ${first}`);
        else healthPortSeen.set(done.health_check_node_port, `${at}/health_check_node_port`);
      }
      if (done.node_port) {
        if (done.node_port < npMin || done.node_port > npMax) errs.push(`${at}/node_port: must be within the node port range ${npMin}-${npMax}, got ${done.node_port}`);
        const id = nodePortId(done.protocol, done.node_port, done.family);
        const first = nodePortSeen.get(id);
        if (first) errs.push(`${at}/node_port: node port ${done.node_port} for ${done.protocol} is already ${first}'s`);
        else nodePortSeen.set(id, `${at}/node_port`);
      }
      const id = `${done.prefix} ${done.protocol} port ${done.port}`;
      const first = vipSeen.get(id);
      if (first) errs.push(`${at}: duplicate VIP ${id} (first at ${first})`);
      else vipSeen.set(id, at);
      return;
    }
    const type = typeof v.type === 'string' ? v.type : Number.isInteger(v.node_port) ? 'nodeport' : 'clusterip';
    if (type === 'nodeport' && !Number.isInteger(v.node_port)) errs.push(`${at}/type: nodeport needs ${at}/node_port`);
    if (Number.isInteger(v.node_port) && type !== 'nodeport' && type !== 'loadbalancer') {
      errs.push(`${at}/node_port: ${type} VIPs have no node port (type nodeport or loadbalancer)`);
    }
    if (v.external_traffic_policy === 'local' && type === 'clusterip') {
      errs.push(`${at}/external_traffic_policy: a clusterip VIP has no external traffic (type nodeport, loadbalancer or externalip)`);
    }
    if (v.health_check_node_port !== undefined && v.external_traffic_policy !== 'local') {
      errs.push(`${at}/health_check_node_port: only a VIP with external_traffic_policy local has one`);
    }
    if (Number.isInteger(v.health_check_node_port)) {
      const hc = v.health_check_node_port as number;
      const first = healthPortSeen.get(hc);
      if (first) errs.push(`${at}/health_check_node_port: port ${hc} is already ${first}`);
      else healthPortSeen.set(hc, `${at}/health_check_node_port`);
    }
    const affinity = typeof v.session_affinity === 'string' && v.session_affinity.toLowerCase() === 'clientip';
    if (v.session_affinity_timeout !== undefined && !affinity) {
      errs.push(`${at}/session_affinity_timeout: applies to session_affinity ClientIP`);
    }
    if (v.internal_traffic_policy === 'local' && (type === 'loadbalancer' || type === 'externalip')) {
      errs.push(`${at}/internal_traffic_policy: applies to cluster IPs, and this VIP is a ${type}`);
    }
    if (Array.isArray(v.source_ranges) && v.source_ranges.length && type !== 'loadbalancer') {
      errs.push(`${at}/source_ranges: only a loadbalancer VIP has source ranges (this one is ${type})`);
    }
    const vipFamily = typeof v.prefix === 'string' ? (v.prefix.includes(':') ? 6 : 4) : undefined;
    // The backends' family: encap's, else the first backend's (all must share it).
    let beFamily: 4 | 6 | undefined;
    let beFamilyFrom = '';
    if (typeof v.encap === 'string' && vipFamily !== undefined && /^nat[46]{1,2}$/.test(v.encap)) {
      const from = v.encap.length === 5 ? Number(v.encap[3]) : vipFamily;
      const to = Number(v.encap[v.encap.length - 1]) as 4 | 6;
      if (from !== vipFamily) errs.push(`${at}/encap: ${v.encap} is an IPv${from} VIP's NAT, and this VIP is IPv${vipFamily}`);
      else [beFamily, beFamilyFrom] = [to, `${at}/encap ${v.encap}`];
    }
    const rangeSeen = new Map<string, string>();
    arr(v.source_ranges).forEach((r, j) => {
      if (typeof r !== 'string' || r === '') return;
      const p = parsePrefix(r);
      if (typeof p === 'string') return void errs.push(`${at}/source_ranges/${j}: ${p}`);
      if (vipFamily !== undefined && p.family !== vipFamily) errs.push(`${at}/source_ranges/${j}: IPv${p.family} range ${p.prefix} for an IPv${vipFamily} VIP (same family required)`);
      const first = rangeSeen.get(p.prefix);
      if (first) errs.push(`${at}/source_ranges/${j}: duplicate range ${p.prefix} (first at ${first})`);
      else rangeSeen.set(p.prefix, `${at}/source_ranges/${j}`);
    });
    if (Number.isInteger(v.node_port) && ((v.node_port as number) < npMin || (v.node_port as number) > npMax)) {
      errs.push(`${at}/node_port: must be within the node port range ${npMin}-${npMax}, got ${v.node_port as number}`);
    }
    if (Number.isInteger(v.node_port)) {
      // A dual-stack service's two VIPs share their node port: one holder per family.
      const id = nodePortId((v.protocol as string) ?? D.protocol, v.node_port as number, typeof v.prefix === 'string' && v.prefix.includes(':') ? 6 : 4);
      const first = nodePortSeen.get(id);
      if (first) errs.push(`${at}/node_port: node port ${v.node_port as number} for ${(v.protocol as string) ?? D.protocol} is already ${first}'s`);
      else nodePortSeen.set(id, `${at}/node_port`);
    }
    const lenErr = Number.isInteger(v.new_len) ? newLenError(v.new_len as number) : undefined;
    if (lenErr) errs.push(`${at}/new_len: ${lenErr}`);
    if (typeof v.prefix === 'string' && v.prefix !== '') {
      const p = parsePrefix(v.prefix);
      if (typeof p === 'string') {
        errs.push(`${at}/prefix: ${p}`);
      } else {
        const protocol = v.protocol ?? D.protocol;
        if (Number.isInteger(v.port) && typeof protocol === 'string') {
          const id = `${p.prefix} ${protocol} port ${v.port as number}`;
          const first = vipSeen.get(id);
          if (first) errs.push(`${at}: duplicate VIP ${id} (first at ${first})`);
          else vipSeen.set(id, at);
        }
      }
    }
    // Paths are made only for a problem: a file of 10k services has 80k backends.
    const backends = arr(v.backends);
    const pathOf = (j: number) => (typeof backends[j] === 'string' ? `${at}/backends/${j}` : `${at}/backends/${j}/address`);
    const beSeen = new Map<string, number>();
    let beFamilyAt = -1; // the backend that set beFamily (-1: encap did, or none yet)
    backends.forEach((b, j) => {
      const text = typeof b === 'string' ? b : isObj(b) ? b.address : undefined;
      if (typeof text !== 'string' || text === '') return;
      const a = parseAddress(text);
      if (typeof a === 'string') return void errs.push(`${pathOf(j)}: ${a}`);
      if (beFamily === undefined) [beFamily, beFamilyAt] = [a.family, j];
      else if (a.family !== beFamily) {
        const from = beFamilyAt >= 0 ? pathOf(beFamilyAt) : beFamilyFrom;
        errs.push(`${pathOf(j)}: IPv${a.family} backend ${a.text}, and this VIP's backends are IPv${beFamily} (${from}): one family per VIP`);
      }
      if (vipFamily === 6 && a.family === 4 && masqNone && !nat64Warned) {
        nat64Warned = true;
        errs.push(`${pathOf(j)}: an IPv6 VIP with IPv4 backends (NAT64) comes from conf.masquerade_address, which is none`);
      }
      const first = beSeen.get(a.text);
      if (first !== undefined) errs.push(`${pathOf(j)}: duplicate backend ${a.text} (first at ${pathOf(first)})`);
      else beSeen.set(a.text, j);
    });
  });
  // A health-check port is a TCP listener on the node: it cannot also be a TCP node port.
  for (const [port, at] of healthPortSeen) {
    const np = nodePortSeen.get(nodePortId('tcp', port, 4));
    if (np) errs.push(`${at}: port ${port} is already ${np}'s node port`);
  }

  return errs;
}

/** Every state's timeout: the defaults, then `timeout` (VPP's, the UDP one), then `timeouts`. */
function buildTimeouts(conf: Json): CtTimeouts {
  const t: CtTimeouts = { ...DEFAULT_TIMEOUTS };
  if (typeof conf.timeout === 'number') t.udp = conf.timeout;
  const given = isObj(conf.timeouts) ? conf.timeouts : {};
  for (const n of TIMEOUT_NAMES) if (typeof given[n] === 'number') t[n] = given[n] as number;
  return t;
}

/**
 * Built VIPs by their text in the file, from an earlier parse: a VIP whose text is unchanged is not
 * built again (every check still runs on the whole document).
 */
export interface VipReuse {
  /** by index: the VIP built before from the same text, if any */
  done: (KpVipConfig | undefined)[];
}

/** `encap` of a VIP whose backends are of the other family (named, or the backends'), else nothing. */
function crossEncap(family: 4 | 6, encap: unknown, backends: KpBackendConfig[]): { encap?: CrossEncap } {
  const named = typeof encap === 'string' ? (Number(encap[encap.length - 1]) as 4 | 6) : undefined;
  const to = named ?? (backends.length ? (backends[0].address.includes(':') ? 6 : 4) : family);
  return to === family ? {} : { encap: family === 4 ? 'nat46' : 'nat64' };
}

/** Only called on a document that passed every check: fill defaults, canonicalise. */
function build(doc: Json, reuse?: VipReuse): KpConfig {
  const conf = isObj(doc.conf) ? doc.conf : {};
  const vip = (v: Json, i: number): KpVipConfig => {
    const done = reuse?.done[i];
    if (done) return done;
    const p = parsePrefix(v.prefix as string);
    if (typeof p === 'string') throw new Error(`unreachable: ${p}`);
    const backends: KpBackendConfig[] = arr(v.backends).map((b) => {
      const o = typeof b === 'string' ? { address: b } : (b as Json);
      return { address: (parseAddress(o.address as string) as { text: string }).text, weight: (o.weight as number) ?? D.weight, ...(o.local === true ? { local: true } : {}), ...(o.terminating === true ? { terminating: true } : {}) };
    });
    return {
      prefix: p.prefix,
      family: p.family,
      protocol: (v.protocol as L4Protocol) ?? D.protocol,
      port: v.port as number,
      target_port: (v.target_port as number) ?? (v.port as number),
      ...(v.new_len !== undefined ? { new_len: v.new_len as number } : {}),
      node_port: (v.node_port as number) ?? 0,
      type: (v.type as VipType) ?? (v.node_port ? 'nodeport' : 'clusterip'),
      source_ranges: [...new Set(arr(v.source_ranges).map((r) => (parsePrefix(r as string) as { prefix: string }).prefix))].sort(),
      ...(v.external_traffic_policy === 'local' ? { external_traffic_policy: 'local' as const } : {}),
      ...(Number.isInteger(v.health_check_node_port) ? { health_check_node_port: v.health_check_node_port as number } : {}),
      ...(typeof v.name === 'string' ? { name: v.name } : {}),
      ...(typeof v.session_affinity === 'string' && v.session_affinity.toLowerCase() === 'clientip'
        ? { session_affinity_timeout: (v.session_affinity_timeout as number) ?? AFFINITY_TIMEOUT_DEFAULT }
        : {}),
      ...(v.internal_traffic_policy === 'local' ? { internal_traffic_policy: 'local' as const } : {}),
      ...crossEncap(p.family, v.encap, backends),
      backends,
    };
  };
  return {
    conf: {
      buckets: (conf.buckets as number) ?? D.buckets,
      timeouts: buildTimeouts(conf),
      ...(typeof conf.hash_seed === 'number' ? { hash_seed: conf.hash_seed } : {}),
      nodeport_range: typeof conf.nodeport_range === 'string' ? (conf.nodeport_range.split('-').map(Number) as [number, number]) : [KP_NODEPORT_MIN, KP_NODEPORT_MAX],
      nodeport_addresses: [...new Set(arr(conf.nodeport_addresses).map((r) => (parsePrefix(r as string) as { prefix: string }).prefix))].sort(),
      ...(typeof conf.masquerade_address === 'string' ? { masquerade_address: parseMasqAddress(conf.masquerade_address) as string } : {}),
      ...(typeof conf.masquerade_address6 === 'string' ? { masquerade_address6: parseMasqAddress(conf.masquerade_address6, 6) as string } : {}),
      ...(typeof conf.nat46_prefix === 'string' ? { nat46_prefix: parseNat46Prefix(conf.nat46_prefix) as string } : {}),
      masquerade_ports: typeof conf.masquerade_ports === 'string' ? (conf.masquerade_ports.split('-').map(Number) as [number, number]) : [KP_MASQ_PORT_MIN, KP_MASQ_PORT_MAX],
    },
    interfaces: arr(doc.interfaces).map((x) => {
      const it = x as Json;
      return { name: it.name as string, mode: (it.mode as XdpMode) ?? D.mode, redirect: (it.redirect as boolean) ?? D.redirect };
    }),
    vips: arr(doc.vips).map((v, i) => vip(v as Json, i)),
  };
}

/** Validate a parsed JSON document; throws KP_ERR_CONFIG listing every problem in `details`. */
export function parseConfig(json: unknown, reuse?: VipReuse): KpConfig {
  const errs = schemaErrors(json, reuse);
  errs.push(...semanticErrors(json, reuse));
  if (errs.length > 0) {
    const details = [...new Set(errs)].sort(byPath);
    const n = details.length;
    throw new KpError('KP_ERR_CONFIG', `invalid config, ${n} problem${n > 1 ? 's' : ''}; nothing was applied:`, { details });
  }
  return build(json as Json, reuse);
}

/** Line and column (1-based) of a character offset. */
function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos).split('\n');
  return `${before.length}:${before[before.length - 1].length + 1}`;
}

/** Read, parse and validate a config file; every failure is a KP_ERR_CONFIG naming the file. */
export function loadConfigFile(path: string): KpConfig {
  return loadConfigSource(path).config;
}

/** A config file read once ('-' is standard input, as is /dev/stdin, which cannot be read twice). */
export interface ConfigSource {
  config: KpConfig;
  /** the file lists its interfaces (even as []): attachments are managed by it */
  manageInterfaces: boolean;
  /** each VIP's text in the file, by index */
  vipTexts: string[];
  /** the byte offset in the file of each VIP's text (-1: not an object), for a reparse of one VIP */
  vipStarts: number[];
  /** the file's conf object as written (a reparse of one VIP checks it against the same conf) */
  rawConf: unknown;
}

export function loadConfigSource(path: string, built?: ReadonlyMap<string, KpVipConfig>): ConfigSource {
  const { text, name } = readConfigText(path);
  return parseConfigText(text, name, built);
}

/** A config file's bytes; an unreadable file is KP_ERR_CONFIG. */
export function readConfigBytes(path: string): { bytes: Buffer; name: string } {
  let bytes: Buffer;
  try {
    // Standard input by its fd: /dev/stdin cannot be opened again when it is a socket (as a spawned
    // process's often is), and a pipe can be read only once anyway.
    bytes = readFileSync(path === '-' || path === '/dev/stdin' ? 0 : path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new KpError('KP_ERR_CONFIG', `cannot read config file ${path}: ${code}`, { op: 'read' });
  }
  return { bytes, name: path === '-' ? '(stdin)' : path };
}

/** A config file's bytes as text; encodings other than UTF-8 are KP_ERR_CONFIG. */
export function decodeConfigText(bytes: Uint8Array, name: string): string {
  const text = decodeConfigBytes(bytes);
  if (typeof text !== 'string') throw new KpError('KP_ERR_CONFIG', `${name} ${text.problem}; nothing was applied`);
  return text;
}

/** A config file's text. */
export function readConfigText(path: string): { text: string; name: string; bytes: Buffer } {
  const { bytes, name } = readConfigBytes(path);
  return { text: decodeConfigText(bytes, name), name, bytes };
}

/** Character offsets of `text` as UTF-8 byte offsets (ascending, -1 kept). */
function byteOffsets(text: string, chars: number[]): number[] {
  const out: number[] = [];
  let c = 0;
  let b = 0;
  for (const at of chars) {
    if (at < 0) {
      out.push(at);
      continue;
    }
    if (at < c) [c, b] = [0, 0]; // not ascending (cannot happen): count again
    b += Buffer.byteLength(text.slice(c, at));
    c = at;
    out.push(b);
  }
  return out;
}

/** A config from its text: JSON syntax, then structure (duplicate keys, depth), then the schema. */
export function parseConfigText(text: string, path: string, built?: ReadonlyMap<string, KpVipConfig>): ConfigSource {
  let json: unknown;
  if (text.charCodeAt(0) === 0xfeff) throw new KpError('KP_ERR_CONFIG', `${path} starts with a byte order mark (U+FEFF): save it as UTF-8 without a BOM; nothing was applied`);
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8's message, without its echo of the text (which may be long, or invisible characters).
    const msg = (e as Error).message.replace(/, "[\s\S]*" is not valid JSON$/, '').replace(/ in JSON at position \d+.*$/, '');
    const at = jsonErrorAt(text);
    const where = lineCol(text, at >= 0 ? at : text.length);
    const near = at >= 0 && at < text.length ? ` (at ${JSON.stringify(text.slice(at, at + 12))})` : at >= text.length ? ' (the text ends early)' : '';
    throw new KpError('KP_ERR_CONFIG', `${path}:${where}: invalid JSON: ${msg}${near}; nothing was applied`);
  }
  const { errors: structure, vipTexts, vipStarts: charStarts } = scanJsonText(text);
  if (structure.length) {
    const n = structure.length;
    throw new KpError('KP_ERR_CONFIG', `${path}: invalid config, ${n} problem${n > 1 ? 's' : ''}; nothing was applied:`, { details: structure });
  }
  try {
    const manageInterfaces = isObj(json) && 'interfaces' in json;
    const config = parseConfig(json, built && { done: vipTexts.map((t) => built.get(t)) });
    // An ASCII file's characters are its bytes.
    const vipStarts = Buffer.byteLength(text) === text.length ? charStarts : byteOffsets(text, charStarts);
    return { config, manageInterfaces, vipTexts, vipStarts, rawConf: isObj(json) ? json.conf : undefined };
  } catch (e) {
    if (e instanceof KpError && e.code === 'KP_ERR_CONFIG') {
      throw new KpError('KP_ERR_CONFIG', `${path}: ${e.message}`, { details: e.details });
    }
    throw e;
  }
}
