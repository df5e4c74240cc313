// kpbpf detach [ifname...]: remove the data plane from interfaces; --purge also drops every pinned map.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { detachedLine } from './attach.js';
import { defaultCgroupPath } from '../dataplane/cgroups.js';

export function registerDetach(program: Command, ctx: CliContext): void {
  program
    .command('detach')
    .description('detach from the given interfaces (all when none given)')
    .argument('[ifname...]', 'interfaces')
    .option('--cgroup [path]', 'detach the socket hooks from this cgroup (default $KPBPF_CGROUP, else the cgroup2 mount) and nothing else')
    .option('--purge', 'after detaching everything, remove all pinned maps (VIPs, backends, connections, counters)')
    .addHelpText('after', '\nExamples:\n  kpbpf detach eth1\n  kpbpf detach --cgroup /sys/fs/cgroup\n  kpbpf detach --purge\n')
    .action((ifnames: string[], opts: { purge?: boolean; cgroup?: string | true }) => {
      const cgroup = opts.cgroup === true ? defaultCgroupPath() : opts.cgroup;
      const control = ctx.dataplane({ load: false });
      // No names: every interface and every cgroup. --cgroup alone: that cgroup only.
      const gone = cgroup && !ifnames.length ? [] : control.detach(ifnames.length ? ifnames : undefined);
      const cgroups = cgroup ? control.detachCgroups(cgroup) : ifnames.length ? [] : control.detachCgroups();
      if (opts.purge) control.purge();
      ctx.print({ detached: gone, cgroups, purged: Boolean(opts.purge) }, () =>
        gone.map(detachedLine).join('') +
        cgroups.map((id) => `detached the socket hooks from cgroup id ${id}\n`).join('') +
        (opts.purge ? 'removed all pins\n' : ''),
      );
    });
}
