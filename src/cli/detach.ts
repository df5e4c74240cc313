// kpbpf detach [ifname...]: remove the data plane from interfaces; --purge also drops every pinned map.
import type { Command } from 'commander';
import type { CliContext } from './context.js';

export function registerDetach(program: Command, ctx: CliContext): void {
  program
    .command('detach')
    .description('detach from the given interfaces (all when none given)')
    .argument('[ifname...]', 'interfaces')
    .option('--purge', 'after detaching everything, remove all pinned maps (VIPs, backends, connections, counters)')
    .addHelpText('after', '\nExamples:\n  kpbpf detach eth1\n  kpbpf detach --purge\n')
    .action((ifnames: string[], opts: { purge?: boolean }) => {
      const control = ctx.dataplane({ load: false });
      const gone = control.detach(ifnames.length ? ifnames : undefined);
      if (opts.purge) control.purge();
      ctx.print({ detached: gone, purged: Boolean(opts.purge) }, () =>
        gone.map((n) => `detached ${n}\n`).join('') + (opts.purge ? 'removed all pins\n' : ''),
      );
    });
}
