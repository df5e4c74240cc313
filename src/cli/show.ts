// kpbpf show [vips|backends|flows|stats|conf|interfaces|cgroups]: read the live data plane.
import type { Command } from 'commander';
import { formatConf } from './conf.js';
import type { CliContext } from './context.js';
import { KpError } from '../errors.js';
import { parseUint } from './words.js';
import type { StatsView, VipView } from '../dataplane/types.js';
import { defaultCgroupPath } from '../dataplane/cgroups.js';
import { hostPort } from '../maps/addr.js';

const WHAT = ['vips', 'backends', 'flows', 'stats', 'conf', 'interfaces', 'cgroups'] as const;
type What = (typeof WHAT)[number];

export const VPP_COUNTER_NAMES: Record<string, string> = {
  existingPkts: 'packet from existing sessions',
  firstPkts: 'first session packet',
  untrackedPkts: 'untracked packet',
  noServerPkts: 'no server configured',
  bytes: 'bytes',
  replyPkts: 'reply packets (SNAT)',
  replyBytes: 'reply bytes',
};

function vipName(v: { prefix: string; protocol: string; port: number }): string {
  return `${v.prefix} ${v.protocol} port ${v.port}`;
}

function formatVips(vips: VipView[]): string {
  if (!vips.length) return 'no vips\n';
  return vips
    .map((v) => {
      const active = v.backends.filter((b) => b.state === 'active').length;
      const draining = v.backends.length - active;
      const np = v.nodePort ? ` nodeport ${v.nodePort} on ${v.nodeAddresses?.length ? v.nodeAddresses.join(',') : 'no node address'}` : '';
      const type = v.type && v.type !== 'clusterip' && !(v.type === 'nodeport' && v.nodePort) ? ` type ${v.type}` : '';
      const ranges = v.sourceRanges?.length ? ` source_ranges ${v.sourceRanges.join(',')}` : '';
      const encap = v.encap ? ` encap ${v.encap}` : '';
      return `${vipName(v)} target ${v.targetPort} new_len ${v.newLen}${v.newLenAuto ? ' (auto)' : ''}${np}${type}${ranges}${encap} backends ${active}${draining ? ` (+${draining} draining)` : ''}\n`;
    })
    .join('');
}

function formatBackends(vips: VipView[]): string {
  const lines: string[] = [];
  for (const v of vips) {
    lines.push(`${vipName(v)}\n`);
    if (!v.backends.length) lines.push('  (no backends)\n');
    for (const b of v.backends) lines.push(`  ${hostPort(b.address, b.port)} weight ${b.weight} ${b.state} slots ${b.slots ?? 0}\n`);
  }
  return lines.join('') || 'no vips\n';
}

function formatStats(s: StatsView): string {
  const lines = ['global:\n'];
  for (const [name, n] of Object.entries(s.global)) if (n) lines.push(`  ${name.padEnd(22)} ${n}\n`);
  for (const v of s.vips) {
    lines.push(`vip ${vipName(v)}:\n`);
    for (const [key, label] of Object.entries(VPP_COUNTER_NAMES)) {
      lines.push(`  ${label.padEnd(30)} ${v.counters[key as keyof typeof v.counters]}\n`);
    }
    for (const b of v.backends) lines.push(`  backend ${hostPort(b.address, b.port).padEnd(22)} packets ${b.packets} bytes ${b.bytes}\n`);
  }
  return lines.join('');
}

export function registerShow(program: Command, ctx: CliContext): void {
  program
    .command('show')
    .description(`show the running state: ${WHAT.join(', ')}`)
    .argument('[what]', WHAT.join('|'), 'vips')
    .option('--limit <n>', 'at most this many connections', (v) => parseUint(v, '--limit', 1, 1_000_000), 100)
    .addHelpText('after', '\nExamples:\n  kpbpf show vips\n  kpbpf show stats --json\n  kpbpf show flows --limit 20\n')
    .action((what: string, opts: { limit: number }) => {
      if (!(WHAT as readonly string[]).includes(what)) {
        throw new KpError('KP_ERR_ARG', `show: expected one of ${WHAT.join(', ')}, got '${what}'`);
      }
      const control = ctx.dataplane({ load: false, write: false });
      switch (what as What) {
        case 'vips': {
          const vips = control.listVips();
          return ctx.print(vips, () => formatVips(vips));
        }
        case 'backends': {
          const vips = control.listVips({ slots: true });
          return ctx.print(vips, () => formatBackends(vips));
        }
        case 'flows': {
          const flows = control.flows({ limit: opts.limit });
          return ctx.print(flows, () =>
            flows.length
              ? flows
                  .map(
                    (f) =>
                      `${f.protocol} ${f.client} -> ${f.vip} => ${f.backend}${f.natPort ? ` (client port ${f.natPort})` : ''}${f.masqueradedAs ? ` (from ${f.masqueradedAs})` : ''} ${f.state}` +
                      ` idle ${f.idleSeconds.toFixed(1)}s of ${f.timeoutSeconds}s${f.loose ? ' (picked up)' : ''}${f.stale ? ' (stale)' : ''}\n`,
                  )
                  .join('')
              : 'no flows\n',
          );
        }
        case 'stats': {
          const stats = control.stats();
          return ctx.print(stats, () => formatStats(stats));
        }
        case 'conf': {
          const conf = control.conf();
          return ctx.print(conf, () => formatConf(conf));
        }
        case 'interfaces': {
          const links = control.links();
          return ctx.print(links, () => (links.length ? links.map((l) => `${l.ifname} (ifindex ${l.ifindex}${l.redirect ? ', redirect' : ''})\n`).join('') : 'not attached\n'));
        }
        case 'cgroups': {
          let known: string | undefined;
          try {
            known = defaultCgroupPath();
          } catch {
            known = undefined;
          }
          const cgs = control.cgroups(known);
          return ctx.print(cgs, () =>
            cgs.length ? cgs.map((c) => `cgroup ${c.path ?? `id ${c.cgroupId}`}: ${c.hooks.join(', ')}\n`).join('') : 'the socket hooks are not attached\n',
          );
        }
      }
    });
}
