// kpbpf attach <ifname...>: load the data plane if needed and attach it to interfaces with pinned bpf_links.
import { Option, type Command } from 'commander';
import type { CliContext } from './context.js';
import { parseBuckets } from './conf.js';

export function registerAttach(program: Command, ctx: CliContext): void {
  program
    .command('attach')
    .description('attach the XDP data plane to interfaces (it keeps running after kpbpf exits)')
    .argument('<ifname...>', 'interfaces that receive traffic to VIPs or replies from backends')
    .addOption(new Option('--mode <mode>', 'XDP mode').choices(['native', 'generic', 'auto']).default('auto'))
    .option('--redirect', 'allow XDP_REDIRECT out of these interfaces (their peers accept XDP frames)')
    .option('--buckets <n>', 'connections the table holds when the data plane is loaded now', parseBuckets)
    .addHelpText('after', '\nExamples:\n  kpbpf attach eth0\n  kpbpf attach eth0 eth1 --mode native --redirect\n')
    .action((ifnames: string[], opts: { mode: 'native' | 'generic' | 'auto'; redirect?: boolean; buckets?: number }) => {
      const control = ctx.dataplane({ load: true, buckets: opts.buckets });
      const links = control.attach(ifnames, { mode: opts.mode, redirect: Boolean(opts.redirect) });
      ctx.print(links, () => links.map((l) => `attached ${l.ifname} (${l.mode}${l.redirect ? ', redirect' : ''})\n`).join(''));
    });
}
