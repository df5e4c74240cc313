// kpbpf explain: what the data plane does with one flow, read from the maps as the program reads
// them: which VIP entry matches, the connection record if there is one, and which backend Maglev
// gives a new connection (and session affinity, when the VIP has it).
import { KpError } from '../errors.js';
import { flowHash, maglevSlot } from '../maglev/flow-hash.js';
import { CT_STATES, flowKey as flowKeyCodec } from '../maps/codecs.js';
import { timeoutOfState } from '../config/timeouts.js';
import { parseAddress } from '../config/address.js';
import type { Control } from './control.js';
import type { Protocol, VipView } from './types.js';
import { PROTO_NUM } from './vips.js';
import { hostPort } from '../maps/addr.js';

export interface ExplainView {
  client: string;
  vip: string;
  protocol: Protocol;
  match?: { vip: string; protocol: Protocol; port: number; type: string; via: 'exact' | 'node port' | 'prefix'; id: number; encap?: 'nat46' | 'nat64' };
  connection?: { backend: string; state: string; idleSeconds: number; timeoutSeconds: number; live: boolean; masqueradedAs?: string; natPort?: number };
  newConnection?: {
    table: 'all backends' | 'local backends';
    slot: number;
    tableLen: number;
    backend?: { address: string; port: number; id: number; weight: number; state: string; slots: number; local?: boolean; terminating?: boolean };
    affinity?: { backend: string; ageSeconds: number; timeoutSeconds: number; used: boolean };
  };
  notes: string[];
}

/** "addr:port" (IPv6 as [addr]:port) -> its parts; errors name the argument. */
export function parseHostPort(text: string, what: string): { addr: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:]+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : 0;
  const a = m ? parseAddress(m[1]) : 'missing';
  if (!m || port < 1 || port > 65535 || typeof a === 'string') {
    throw new KpError('KP_ERR_ARG', `${what}: expected ADDRESS:PORT (e.g. 198.18.0.2:40000), got '${text}'${typeof a === 'string' && m ? `: ${a}` : ''}`);
  }
  return { addr: a.text, port };
}


/** An IPv4 address embedded in a /96 prefix (RFC 6052). */
function embedV4(prefix: string, v4: string): string {
  const [a, b, c, d] = v4.split('.').map(Number);
  return `${prefix.split('/')[0]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

function inPrefix(addr: string, prefix: string): boolean {
  const [net, lenText] = prefix.split('/');
  const a = parseAddress(addr);
  const n = parseAddress(net);
  if (typeof a === 'string' || typeof n === 'string' || a.family !== n.family) return false;
  const len = Number(lenText);
  for (let bit = 0; bit < len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((a.bytes[bit >> 3] & m) !== (n.bytes[bit >> 3] & m)) return false;
  }
  return true;
}

export function explain(control: Control, client: string, vip: string, protocol: Protocol): ExplainView {
  const c = parseHostPort(client, 'client');
  const v = parseHostPort(vip, 'vip');
  const out: ExplainView = { client: hostPort(c.addr, c.port), vip: hostPort(v.addr, v.port), protocol, notes: [] };
  const vips = control.listVips({ slots: true });
  const full = v.addr.includes(':') ? 128 : 32;
  let found: VipView | undefined = vips.find((x) => x.prefix === `${v.addr}/${full}` && x.protocol === protocol && x.port === v.port);
  let via: 'exact' | 'node port' | 'prefix' = 'exact';
  if (!found) {
    found = vips.find((x) => x.protocol === protocol && x.nodePort === v.port && (x.nodeAddresses ?? []).includes(v.addr));
    via = 'node port';
  }
  if (!found) {
    const lens = vips.filter((x) => x.protocol === protocol && x.port === v.port && Number(x.prefix.split('/')[1]) < full && inPrefix(v.addr, x.prefix));
    found = lens.sort((a, b) => Number(b.prefix.split('/')[1]) - Number(a.prefix.split('/')[1]))[0];
    via = 'prefix';
  }
  if (!found) {
    out.notes.push(`no VIP matches ${out.vip} ${protocol}: the packet passes untouched (pass_no_match), unless it is a reply to a NATed connection`);
    return out;
  }
  out.match = { vip: found.prefix, protocol: found.protocol, port: found.port, type: found.type ?? 'clusterip', via, id: found.id, ...(found.encap ? { encap: found.encap } : {}) };
  const key = { saddr: c.addr, daddr: v.addr, sport: c.port, dport: v.port, proto: PROTO_NUM[protocol] };
  const rec = control.dp.maps.ct.lookup(key);
  const conf = control.conf();
  if (found.encap === 'nat46') {
    out.notes.push(`NAT46: the packet is translated to IPv6, from ${embedV4(conf.nat46Prefix, c.addr)} (the client in nat46_prefix ${conf.nat46Prefix}) and a masquerade port`);
  } else if (found.encap === 'nat64') {
    out.notes.push(conf.masqueradeAddress === 'none'
      ? 'NAT64 with masquerade_address none: nothing can reach the backends (a new connection is rejected)'
      : `NAT64: the packet is translated to IPv4, from masquerade_address ${conf.masqueradeAddress} and a masquerade port`);
  }
  if (rec) {
    const be = found.backends.find((b) => b.id === rec.backendId);
    const idle = Math.max(0, Number(process.hrtime.bigint() - rec.lastSeenNs) / 1e9);
    const timeout = timeoutOfState(conf.timeouts, rec.state);
    out.connection = {
      backend: be ? hostPort(be.address, be.port) : `backend #${rec.backendId} (removed)`,
      state: CT_STATES[rec.state] ?? String(rec.state),
      idleSeconds: Math.round(idle * 10) / 10,
      timeoutSeconds: timeout,
      live: Boolean(be && be.gen === rec.backendGen) && (timeout === 0 || idle <= timeout),
      ...(rec.flags & 0x40 ? { masqueradedAs: hostPort(rec.vipAddr, rec.clientPort) } : rec.clientPort !== c.port ? { natPort: rec.clientPort } : {}),
    };
    if (!out.connection.live) out.notes.push('the record is stale (expired, or its backend slot was flushed): the next packet picks again');
  }
  // The entry a new connection uses: the node port and LoadBalancer/external entries follow
  // externalTrafficPolicy, the cluster IP internalTrafficPolicy.
  const external = via === 'node port' || found.type === 'loadbalancer' || found.type === 'externalip';
  const local = external ? found.externalTrafficPolicy === 'local' : found.internalTrafficPolicy === 'local';
  const table = control.dp.getMaglevTable(found.id, local);
  const seed = control.dp.maps.config.lookup(0)?.hashSeed ?? 0;
  const slot = maglevSlot(flowHash(flowKeyCodec.encode(key), seed), found.newLen);
  out.newConnection = { table: local ? 'local backends' : 'all backends', slot, tableLen: found.newLen };
  const id = table?.[slot];
  const be = found.backends.find((b) => b.id === id);
  if (!table) out.notes.push(local ? 'no local backend: a new connection is dropped (drop_no_local)' : 'no serving backend: a new connection is rejected (ICMP port unreachable)');
  else if (be) {
    out.newConnection.backend = {
      address: be.address,
      port: be.port,
      id: be.id,
      weight: be.weight,
      state: be.state,
      slots: table.filter((x) => x === be.id).length,
      ...(be.local ? { local: true } : {}),
      ...(be.terminating ? { terminating: true } : {}),
    };
  }
  if (found.sessionAffinityTimeout) {
    const a = control.dp.maps.affinity.lookup({ vipId: found.id, addr: c.addr });
    if (a) {
      const ab = found.backends.find((b) => b.id === a.backendId && b.gen === a.backendGen);
      const age = Math.max(0, Number(process.hrtime.bigint() - a.lastNs) / 1e9);
      const used = Boolean(ab && ab.state === 'active') && age <= found.sessionAffinityTimeout;
      out.newConnection.affinity = { backend: ab ? hostPort(ab.address, ab.port) : `backend #${a.backendId} (gone)`, ageSeconds: Math.round(age), timeoutSeconds: found.sessionAffinityTimeout, used };
    }
  }
  if (found.sourceRanges?.length) out.notes.push(`new connections only from ${found.sourceRanges.join(', ')} (source ranges)`);
  return out;
}

export function formatExplain(e: ExplainView): string {
  const lines = [`flow ${e.client} -> ${e.vip} ${e.protocol}`];
  if (e.match) lines.push(`vip ${e.match.vip} ${e.match.protocol} port ${e.match.port} (id ${e.match.id}, ${e.match.type}${e.match.encap ? `, ${e.match.encap}` : ''}, ${e.match.via} match)`);
  if (e.connection) {
    const c = e.connection;
    lines.push(`connection: to ${c.backend}, ${c.state}, idle ${c.idleSeconds} s of ${c.timeoutSeconds}${c.masqueradedAs ? `, masqueraded as ${c.masqueradedAs}` : ''}${c.natPort ? `, client port ${c.natPort}` : ''}${c.live ? '' : ' (stale)'}`);
  } else if (e.match) {
    lines.push('connection: none (its next packet is a new connection)');
  }
  const n = e.newConnection;
  if (n) {
    const b = n.backend;
    lines.push(
      `new connection: slot ${n.slot} of ${n.tableLen} (${n.table})${b ? ` -> ${hostPort(b.address, b.port)} (id ${b.id}, weight ${b.weight}, ${b.state}${b.local ? ', local' : ''}${b.terminating ? ', terminating' : ''}, ${b.slots} slots)` : ''}`,
    );
    if (n.affinity) lines.push(`session affinity: ${n.affinity.backend}, last ${n.affinity.ageSeconds} s ago of ${n.affinity.timeoutSeconds}: ${n.affinity.used ? 'used instead' : 'not used'}`);
  }
  for (const note of e.notes) lines.push(note);
  return lines.join('\n') + '\n';
}
