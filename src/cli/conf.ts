// kpbpf conf [buckets N] [timeout S] [timeout STATE S]... [hash_seed N]: connection table size,
// timeouts and the flow-hash seed.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { parseUint } from './words.js';
import { KpError } from '../errors.js';
import { KP_TIMEOUT_MAX, TIMEOUT_NAMES, type CtTimeouts, type TimeoutName } from '../config/timeouts.js';
import { KP_HASH_SEED_MAX } from '../config/types.js';
import type { ConfView } from '../dataplane/types.js';
import { parsePrefix } from '../maps/addr.js';
import { KP_NODEPORT_PREFIXES } from '../maps/codecs.js';
import { parseMasqAddress, parseMasqPorts, parseNat46Prefix } from '../config/masq.js';
import { KP_NODEPORT_MAX, KP_NODEPORT_MIN } from '../config/types.js';
import { localPortRange } from '../sys/host.js';

export const MIN_BUCKETS = 1024;
export const MAX_BUCKETS = 1 << 24;

export function parseBuckets(v: string): number {
  const n = parseUint(v, 'buckets', MIN_BUCKETS, MAX_BUCKETS);
  if ((n & (n - 1)) !== 0) throw new KpError('KP_ERR_ARG', `buckets: expected a power of two from ${MIN_BUCKETS} to ${MAX_BUCKETS}, got ${v}`);
  return n;
}

export interface ConfArgs {
  buckets?: number;
  timeouts: Partial<CtTimeouts>;
  hashSeed?: number;
  nodePortRange?: [number, number];
  /** [] = every node address */
  nodePortAddresses?: string[];
  /** an IPv4 address or 'none' */
  masqueradeAddress?: string;
  masqueradeAddress6?: string;
  nat46Prefix?: string;
  masqueradePorts?: [number, number];
}

/** `buckets N`, `timeout S` (VPP's: the UDP timeout), `timeout STATE S` and `hash_seed N`, in any order. */
export function parseConfWords(words: string[]): ConfArgs {
  const out: ConfArgs = { timeouts: {} };
  const missing = (w: string) => new KpError('KP_ERR_ARG', `${w}: expected a value`);
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (w === 'buckets') {
      if (out.buckets !== undefined) throw new KpError('KP_ERR_ARG', 'buckets: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      out.buckets = parseBuckets(words[++i]);
    } else if (w === 'timeout') {
      if (i + 1 >= words.length) throw missing(w);
      let name: TimeoutName = 'udp';
      if (!/^[0-9]/.test(words[i + 1])) {
        const n = words[++i];
        if (!(TIMEOUT_NAMES as string[]).includes(n)) {
          throw new KpError('KP_ERR_ARG', `timeout: expected seconds or one of ${TIMEOUT_NAMES.join(', ')}, got '${n}'`);
        }
        name = n as TimeoutName;
        if (i + 1 >= words.length) throw missing(`timeout ${name}`);
      }
      if (out.timeouts[name] !== undefined) throw new KpError('KP_ERR_ARG', `timeout ${name}: given more than once`);
      out.timeouts[name] = parseUint(words[++i], `timeout ${name}`, 1, KP_TIMEOUT_MAX);
    } else if (w === 'hash_seed' || w === 'hash-seed') {
      if (out.hashSeed !== undefined) throw new KpError('KP_ERR_ARG', 'hash_seed: given more than once');
      if (i + 1 >= words.length) throw missing('hash_seed');
      out.hashSeed = parseUint(words[++i], 'hash_seed', 0, KP_HASH_SEED_MAX);
    } else if (w === 'nodeport_range') {
      if (out.nodePortRange) throw new KpError('KP_ERR_ARG', 'nodeport_range: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const v = words[++i];
      const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
      const [a, b] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
      if (!m || a < 1 || b > 65535 || a > b) throw new KpError('KP_ERR_ARG', `nodeport_range: expected MIN-MAX with 1 <= MIN <= MAX <= 65535 (e.g. 30000-32767), got '${v}'`);
      out.nodePortRange = [a, b];
    } else if (w === 'nodeport_addresses') {
      if (out.nodePortAddresses) throw new KpError('KP_ERR_ARG', 'nodeport_addresses: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const v = words[++i];
      out.nodePortAddresses = v === 'all' ? [] : v.split(',').filter(Boolean).map((p) => parsePrefix(p).text);
      if (out.nodePortAddresses.length > KP_NODEPORT_PREFIXES) throw new KpError('KP_ERR_ARG', `nodeport_addresses: at most ${KP_NODEPORT_PREFIXES} prefixes`);
    } else if (w === 'masquerade_address') {
      if (out.masqueradeAddress !== undefined) throw new KpError('KP_ERR_ARG', 'masquerade_address: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const a = parseMasqAddress(words[++i]);
      if (typeof a !== 'string') throw new KpError('KP_ERR_ARG', `masquerade_address: ${a.error}`);
      out.masqueradeAddress = a;
    } else if (w === 'masquerade_address6') {
      if (out.masqueradeAddress6 !== undefined) throw new KpError('KP_ERR_ARG', 'masquerade_address6: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const a = parseMasqAddress(words[++i], 6);
      if (typeof a !== 'string') throw new KpError('KP_ERR_ARG', `masquerade_address6: ${a.error}`);
      out.masqueradeAddress6 = a;
    } else if (w === 'nat46_prefix') {
      if (out.nat46Prefix !== undefined) throw new KpError('KP_ERR_ARG', 'nat46_prefix: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const p = parseNat46Prefix(words[++i]);
      if (typeof p !== 'string') throw new KpError('KP_ERR_ARG', `nat46_prefix: ${p.error}`);
      out.nat46Prefix = p;
    } else if (w === 'masquerade_ports') {
      if (out.masqueradePorts) throw new KpError('KP_ERR_ARG', 'masquerade_ports: given more than once');
      if (i + 1 >= words.length) throw missing(w);
      const r = parseMasqPorts(words[++i], out.nodePortRange ?? [KP_NODEPORT_MIN, KP_NODEPORT_MAX], localPortRange());
      if (!Array.isArray(r)) throw new KpError('KP_ERR_ARG', `masquerade_ports: ${r.error}`);
      out.masqueradePorts = r;
    } else {
      throw new KpError(
        'KP_ERR_ARG',
        `conf: unexpected argument '${w}' (expected buckets, timeout, hash_seed, nodeport_range, nodeport_addresses, masquerade_address, masquerade_address6, masquerade_ports or nat46_prefix)`,
      );
    }
  }
  return out;
}

/** `kpbpf conf` and `kpbpf show conf`: one setting per line, in the words `conf` takes. */
export function formatConf(conf: ConfView): string {
  return (
    `buckets ${conf.buckets}\n${TIMEOUT_NAMES.map((n) => `timeout ${n} ${conf.timeouts[n]}\n`).join('')}hash_seed ${conf.hashSeed}\n` +
    `nodeport_range ${conf.nodePortRange}\nnodeport_addresses ${conf.nodePortAddresses.length ? conf.nodePortAddresses.join(',') : 'all'}\n` +
    `masquerade_address ${conf.masqueradeAddress}\nmasquerade_address6 ${conf.masqueradeAddress6}\nmasquerade_ports ${conf.masqueradePorts}\nnat46_prefix ${conf.nat46Prefix}\n`
  );
}

export function registerConf(program: Command, ctx: CliContext): void {
  program
    .command('conf')
    .description('show or set the connection table size (buckets: connections), the idle timeouts per state (seconds) and the flow-hash seed')
    .argument(
      '[words...]',
      `buckets N, timeout S (UDP), timeout STATE S with STATE one of ${TIMEOUT_NAMES.join(', ')}, hash_seed N (0-${KP_HASH_SEED_MAX}; one value per cluster), ` +
        'nodeport_range MIN-MAX, nodeport_addresses PREFIX[,PREFIX...]|all, masquerade_address ADDR|none, masquerade_address6 ADDR6|none, masquerade_ports MIN-MAX, nat46_prefix PREFIX/96 (NAT46 clients\' IPv4 addresses are embedded in it; default 64:ff9b::/96)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  kpbpf conf\n  kpbpf conf buckets 262144 timeout 30\n  kpbpf conf timeout tcp_established 86400 timeout tcp_close_wait 3600\n  kpbpf conf hash_seed 3735928559\n  kpbpf conf nodeport_addresses 198.18.0.0/24 nodeport_range 30000-32767\n  kpbpf conf masquerade_address 198.18.0.1 masquerade_ports 1024-29999\n  kpbpf conf masquerade_address6 2001:db8::1\n  kpbpf conf nat46_prefix 2001:db8:ff46::/96\n',
    )
    .action((words: string[]) => {
      const args = parseConfWords(words);
      const control = ctx.dataplane({ load: true, buckets: args.buckets });
      if (args.buckets !== undefined || Object.keys(args.timeouts).length || args.hashSeed !== undefined) control.setConf(args);
      if (args.nodePortRange || args.nodePortAddresses) control.setNodePorts({ range: args.nodePortRange, addresses: args.nodePortAddresses });
      if (args.masqueradeAddress !== undefined || args.masqueradeAddress6 !== undefined || args.masqueradePorts || args.nat46Prefix !== undefined) {
        control.setMasq({ address: args.masqueradeAddress, address6: args.masqueradeAddress6, ports: args.masqueradePorts, nat46Prefix: args.nat46Prefix });
      }
      const conf = control.conf();
      ctx.print(conf, () => formatConf(conf));
    });
}
