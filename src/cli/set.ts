// kpbpf set interface nat4|nat6 in <ifname> [del]: the seed plugin's SNAT interface. kpbpf
// translates replies of both families wherever it is attached, so either is `attach <ifname>` (and
// `detach <ifname>` with del).
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { attachedLine, detachedLine } from './attach.js';
import { KpError } from '../errors.js';

export interface SetInterfaceArgs {
  ifname: string;
  del: boolean;
}

export function parseSetWords(words: string[]): SetInterfaceArgs {
  const [what, nat, dir, ifname, ...rest] = words;
  const usage = 'expected: set interface nat4|nat6 in <ifname> [del]';
  if (what !== 'interface') throw new KpError('KP_ERR_ARG', `set: unknown setting '${what ?? ''}' (${usage})`);
  if (nat !== 'nat4' && nat !== 'nat6') throw new KpError('KP_ERR_ARG', `set interface: expected nat4 or nat6, got '${nat ?? ''}' (${usage})`);
  if (dir !== 'in') throw new KpError('KP_ERR_ARG', `set interface ${nat}: expected 'in', got '${dir ?? ''}' (${usage})`);
  if (!ifname) throw new KpError('KP_ERR_ARG', `set interface ${nat} in: expected an interface name (${usage})`);
  if (rest.length > 1 || (rest.length === 1 && rest[0] !== 'del')) {
    throw new KpError('KP_ERR_ARG', `set interface ${nat} in ${ifname}: unexpected argument '${rest[rest[0] === 'del' ? 1 : 0]}' (${usage})`);
  }
  return { ifname, del: rest[0] === 'del' };
}

export function registerSet(program: Command, ctx: CliContext): void {
  program
    .command('set')
    .description("the seed plugin's `set interface nat4|nat6 in <ifname> [del]`: attach to (or detach from) the interface replies arrive on")
    .argument('<words...>', 'interface nat4|nat6 in <ifname> [del]')
    .addHelpText('after', '\nExamples:\n  kpbpf set interface nat4 in eth1        (= kpbpf attach eth1)\n  kpbpf set interface nat6 in eth1        (the same: one attachment serves both families)\n  kpbpf set interface nat4 in eth1 del    (= kpbpf detach eth1)\n')
    .action((words: string[]) => {
      const a = parseSetWords(words);
      if (a.del) {
        const control = ctx.dataplane({ load: false });
        const gone = control.detach([a.ifname]);
        ctx.print({ detached: gone }, () => gone.map(detachedLine).join(''));
        return;
      }
      const links = ctx.dataplane({ load: true }).attach([a.ifname], { mode: 'auto', redirect: false });
      ctx.print(links, () => links.map(attachedLine).join(''));
    });
}
