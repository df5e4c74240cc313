// kpbpf vip add|del: services (VIP prefix, protocol, port) and their target port and Maglev table size.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { VIP_TYPES, type CrossEncap, type TrafficPolicy, type VipSpec, type VipType, type VipView } from '../dataplane/types.js';
import type { Control } from '../dataplane/control.js';
import { parseProtocol, parseUint, parseWords } from './words.js';
import { KpError } from '../errors.js';
import { KP_MAGLEV_MAX_LEN, KP_MAGLEV_MIN_LEN } from '../maglev/primes.js';
import { KP_NODEPORT_MAX, KP_NODEPORT_MIN } from '../config/types.js';
import { newLenError } from '../config/validate.js';
import { AFFINITY_TIMEOUT_DEFAULT, AFFINITY_TIMEOUT_MAX } from '../config/types.js';

const port = (name: string) => (v: string) => parseUint(v, name, 1, 65535);

/** The words after `vip add <prefix>`: everything of the VIP but its prefix. */
export function parseVipAddWords(words: string[]): Omit<VipSpec, 'prefix' | 'encap'> & { encap?: string } {
  const { opts, rest } = parseWords(
    words,
    {
      protocol: parseProtocol,
      port: port('port'),
      target_port: port('target'),
      new_len: (v) => {
        if (v === 'auto') return 'auto';
        const n = parseUint(v, 'new_len', KP_MAGLEV_MIN_LEN, KP_MAGLEV_MAX_LEN);
        const err = newLenError(n);
        if (err) throw new KpError('KP_ERR_ARG', `new_len: ${err}`);
        return n;
      },
      node_port: port('nodeport'), // the data plane checks it against the node port range
      type: parseVipType,
      encap: parseEncap,
      external_traffic_policy: parsePolicy('external_traffic_policy'),
      internal_traffic_policy: parsePolicy('internal_traffic_policy'),
      source_ranges: (v) => v.split(',').filter(Boolean),
      affinity: (v) => {
        if (!['clientip', 'none'].includes(v.toLowerCase())) throw new KpError('KP_ERR_ARG', `affinity: expected clientip or none, got '${v}'`);
        return v.toLowerCase();
      },
      affinity_timeout: (v) => parseUint(v, 'affinity_timeout', 1, AFFINITY_TIMEOUT_MAX),
    },
    { target: 'target_port', newlen: 'new_len', nodeport: 'node_port', source_range: 'source_ranges', etp: 'external_traffic_policy', itp: 'internal_traffic_policy' },
  );
  if (rest.length) throw new KpError('KP_ERR_ARG', `vip add: unexpected argument '${rest[0]}' (expected protocol, port, target, new_len, nodeport, type, source_ranges, etp, itp, affinity, affinity_timeout or encap)`);
  if (opts.port === undefined) throw new KpError('KP_ERR_ARG', 'vip add: port: expected a port number (e.g. port 80)');
  if (opts.affinity_timeout !== undefined && opts.affinity !== 'clientip') throw new KpError('KP_ERR_ARG', 'affinity_timeout: applies to affinity clientip');
  return {
    protocol: (opts.protocol as 'tcp' | 'udp') ?? 'tcp',
    port: opts.port as number,
    targetPort: (opts.target_port as number) ?? (opts.port as number),
    // Left out or "auto": a prime >= 100 x backends, following the backend count.
    ...(typeof opts.new_len === 'number' ? { newLen: opts.new_len } : {}),
    nodePort: opts.node_port as number | undefined,
    ...(opts.type ? { type: opts.type as VipType } : {}),
    ...(opts.source_ranges ? { sourceRanges: opts.source_ranges as string[] } : {}),
    ...(opts.encap ? { encap: opts.encap as string } : {}),
    ...(opts.external_traffic_policy ? { externalTrafficPolicy: opts.external_traffic_policy as TrafficPolicy } : {}),
    ...(opts.internal_traffic_policy ? { internalTrafficPolicy: opts.internal_traffic_policy as TrafficPolicy } : {}),
    ...(opts.affinity === 'clientip' ? { sessionAffinityTimeout: (opts.affinity_timeout as number) ?? AFFINITY_TIMEOUT_DEFAULT } : {}),
  };
}

const parsePolicy = (name: string) => (v: string): TrafficPolicy => {
  if (v !== 'cluster' && v !== 'local') throw new KpError('KP_ERR_ARG', `${name}: expected cluster or local, got '${v}'`);
  return v;
};

/** The seed's `encap nat4|nat6` and kpbpf's `encap nat44|nat46|nat64|nat66`: the backends' family. */
const ENCAPS = ['nat4', 'nat6', 'nat44', 'nat46', 'nat64', 'nat66'];
function parseEncap(v: string): string {
  if (!ENCAPS.includes(v)) throw new KpError('KP_ERR_ARG', `encap: expected one of ${ENCAPS.join(', ')}, got '${v}'`);
  return v;
}

/** An encap word for a VIP of this family: its cross-family NAT (nat46, nat64), or undefined for the VIP's own family. */
export function checkEncap(encap: string, vipFamily: 4 | 6): CrossEncap | undefined {
  const from = encap.length === 5 ? Number(encap[3]) : vipFamily;
  const to = Number(encap[encap.length - 1]);
  if (from !== vipFamily) throw new KpError('KP_ERR_ARG', `encap ${encap}: an IPv${from} VIP's NAT, and this VIP is IPv${vipFamily}`);
  if (from === to) return undefined;
  return vipFamily === 4 ? 'nat46' : 'nat64';
}

function parseVipType(v: string): VipType {
  if (!(VIP_TYPES as string[]).includes(v)) throw new KpError('KP_ERR_ARG', `type: expected one of ${VIP_TYPES.join(', ')}, got '${v}'`);
  return v as VipType;
}

/** A VIP in the words `vip add` takes. */
export function vipLine(v: VipView): string {
  const np = v.nodePort ? ` nodeport ${v.nodePort} (on ${v.nodeAddresses?.length ? v.nodeAddresses.join(', ') : 'no node address'})` : '';
  const type = v.type && v.type !== 'clusterip' && !(v.type === 'nodeport' && v.nodePort) ? ` type ${v.type}` : '';
  const ranges = v.sourceRanges?.length ? ` source_ranges ${v.sourceRanges.join(',')}` : '';
  const pol = `${v.externalTrafficPolicy === 'local' ? ' etp local' : ''}${v.internalTrafficPolicy === 'local' ? ' itp local' : ''}`;
  const aff = v.sessionAffinityTimeout ? ` affinity clientip affinity_timeout ${v.sessionAffinityTimeout}` : '';
  const encap = v.encap ? ` encap ${v.encap}` : '';
  return `vip ${v.prefix} ${v.protocol} port ${v.port} target ${v.targetPort} new_len ${v.newLen}${v.newLenAuto ? ' (auto)' : ''}${np}${type}${ranges}${pol}${aff}${encap}`;
}

function existingEncap(control: Control, prefix: string, protocol: 'tcp' | 'udp', port: number): CrossEncap | undefined {
  try {
    return control.findVip({ prefix, protocol, port }).encap;
  } catch {
    return undefined; // a new VIP
  }
}

export function registerVip(program: Command, ctx: CliContext): void {
  const vip = program.command('vip').description('add or delete a VIP (service address, protocol and port)');

  vip
    .command('add')
    .description('add a VIP, or change the target port / new_len / node port of an existing one')
    .argument('<prefix>', 'VIP address or prefix, e.g. 198.18.100.10/32 or 198.18.64.0/24')
    .argument('[words...]', `protocol tcp|udp, port N, target N, new_len N|auto (prime; default auto: >= 100 x backends), nodeport N (in the node port range, ${KP_NODEPORT_MIN}-${KP_NODEPORT_MAX} unless conf nodeport_range says otherwise; on every node address), type ${VIP_TYPES.join('|')}, source_ranges PREFIX[,PREFIX...] (loadbalancer), etp|external_traffic_policy cluster|local, itp|internal_traffic_policy cluster|local, affinity clientip|none, affinity_timeout S (1-86400, default 10800), encap nat4|nat6|nat44|nat46|nat64|nat66 (the backends' family: nat46 an IPv4 VIP with IPv6 backends, nat64 the reverse)`)
    .addHelpText('after', '\nExamples:\n  kpbpf vip add 198.18.100.10/32 protocol tcp port 80 target 8080 new_len 1021\n  kpbpf vip add 90.1.2.1/32 port 3306 target 3307 nodeport 30964\n  kpbpf vip add 198.18.200.1/32 port 443 target 8443 type loadbalancer source_ranges 198.18.0.0/24\n  kpbpf vip add 2004::/16 encap nat4 port 6306 target 6307 nodeport 30966   # NAT64\n')
    .action((prefix: string, words: string[]) => {
      const { encap, ...rest } = parseVipAddWords(words); // before anything is loaded
      const cross = encap ? checkEncap(encap, prefix.includes(':') ? 6 : 4) : undefined;
      const control = ctx.dataplane();
      // Left out on an existing VIP, encap stays (a change of family drains every backend).
      const kept = encap ? undefined : existingEncap(control, prefix, rest.protocol, rest.port);
      const spec = { prefix, ...rest, ...(cross ?? kept ? { encap: cross ?? kept } : {}) };
      const view = control.addVip(spec);
      ctx.print(view, () => `${vipLine(view)} (id ${view.id})\n`);
    });

  vip
    .command('del')
    .description('delete a VIP and its backends; its flows re-select (and find no server)')
    .argument('<prefix>', 'VIP prefix')
    .argument('[words...]', 'protocol tcp|udp, port N')
    .addHelpText('after', '\nExample:\n  kpbpf vip del 198.18.100.10/32 protocol tcp port 80\n')
    .action((prefix: string, words: string[]) => {
      const { opts, rest } = parseWords(words, { protocol: parseProtocol, port: port('port') });
      if (rest.length) throw new KpError('KP_ERR_ARG', `vip del: unexpected argument '${rest[0]}' (expected protocol or port)`);
      const control = ctx.dataplane({ load: false });
      const view = control.findVip({ prefix, protocol: opts.protocol as 'tcp' | 'udp' | undefined, port: opts.port as number | undefined });
      control.delVip(view);
      ctx.print({ deleted: view }, () => `deleted vip ${view.prefix} ${view.protocol} port ${view.port}\n`);
    });
}
