// kpbpf attach <ifname...>: load the data plane if needed and attach it to interfaces with pinned bpf_links.
import { Option, type Command } from 'commander';
import type { CliContext } from './context.js';
import type { DetachedView } from '../dataplane/types.js';
import { parseBuckets } from './conf.js';
import { KpError } from '../errors.js';
import { defaultCgroupPath } from '../dataplane/cgroups.js';
import { cgroupId } from '../loader/cgroup.js';

export function registerAttach(program: Command, ctx: CliContext): void {
  program
    .command('attach')
    .description('attach the XDP data plane to interfaces, and/or the socket hooks to a cgroup (both keep running after kpbpf exits)')
    .argument('[ifname...]', 'interfaces that receive traffic to VIPs or replies from backends')
    .addOption(new Option('--mode <mode>', 'XDP mode').choices(['native', 'generic', 'auto']).default('auto'))
    .option('--redirect', 'allow XDP_REDIRECT out of these interfaces (their peers accept XDP frames)')
    .option('--buckets <n>', 'connections the table holds when the data plane is loaded now', parseBuckets)
    .option('--cgroup [path]', "serve the node's own sockets in this cgroup v2 directory (default $KPBPF_CGROUP, else the cgroup2 mount)")
    .addHelpText(
      'after',
      '\nExamples:\n  kpbpf attach eth0\n  kpbpf attach eth0 eth1 --mode native --redirect\n  kpbpf attach eth0 --cgroup /sys/fs/cgroup\n',
    )
    .action((ifnames: string[], opts: { mode: 'native' | 'generic' | 'auto'; redirect?: boolean; buckets?: number; cgroup?: string | true }) => {
      if (!ifnames.length && !opts.cgroup) throw new KpError('KP_ERR_ARG', 'attach: expected interface names, --cgroup, or both');
      const cgroup = opts.cgroup === true ? defaultCgroupPath() : opts.cgroup;
      if (cgroup) cgroupId(cgroup); // a bad path is refused before anything is loaded
      const control = ctx.dataplane({ load: true, buckets: opts.buckets });
      const links = ifnames.length ? control.attach(ifnames, { mode: opts.mode, redirect: Boolean(opts.redirect) }) : [];
      const cg = cgroup ? control.attachCgroup(cgroup) : undefined;
      ctx.print(cg ? { interfaces: links, cgroup: cg } : links, () =>
        links.map(attachedLine).join('') +
        (cg ? `attached the socket hooks to cgroup ${cg.path} (id ${cg.cgroupId}: ${cg.hooks.join(', ')})\n` : ''),
      );
    });
}

/** "attached eth0 (native, redirect; set accept_local 0 -> 1)" */
export function attachedLine(l: { ifname: string; mode: string; redirect: boolean; set?: string[] }): string {
  return `attached ${l.ifname} (${l.mode}${l.redirect ? ', redirect' : ''}${l.set?.length ? `; set ${l.set.join(', ')}` : ''})\n`;
}

/** "detached eth0 (restored rp_filter 2 -> 1)" */
export function detachedLine(d: DetachedView): string {
  return `detached ${d.ifname}${d.restored.length ? ` (restored ${d.restored.join(', ')})` : ''}\n`;
}
