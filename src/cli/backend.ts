// kpbpf backend add|del (aliases: as, pod): a VIP's backends. Removal is graceful unless `flush`.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { parseProtocol, parseUint, parseWords } from './words.js';
import { KpError } from '../errors.js';

function vipWords(words: string[], extra: Record<string, ((v: string) => unknown) | null>) {
  return parseWords(words, { protocol: parseProtocol, port: (v) => parseUint(v, 'port', 1, 65535), ...extra });
}

export function registerBackend(program: Command, ctx: CliContext): void {
  const backend = program
    .command('backend')
    .aliases(['as', 'pod'])
    .description("add or delete a VIP's backends (pods)");

  backend
    .command('add')
    .description('add backends; existing connections keep theirs, new ones spread over all')
    .argument('<vip>', 'VIP prefix, e.g. 198.18.100.10/32')
    .argument('<words...>', '[protocol tcp|udp] [port N] [weight W] [local] ADDRESS...  (local: on this node, for local traffic policies)')
    .addHelpText('after', '\nExamples:\n  kpbpf backend add 198.18.100.10/32 protocol tcp port 80 198.18.1.2 198.18.2.2\n  kpbpf backend add 198.18.100.10/32 port 80 local 198.18.1.2\n')
    .action((prefix: string, words: string[]) => {
      const { opts, rest } = vipWords(words, { weight: (v) => parseUint(v, 'weight', 1, 65535), local: null });
      if (!rest.length) throw new KpError('KP_ERR_ARG', 'backend add: expected at least one backend address');
      const control = ctx.dataplane({ load: false });
      const vip = control.findVip({ prefix, protocol: opts.protocol as 'tcp' | 'udp' | undefined, port: opts.port as number | undefined });
      const added = control.addBackends(vip, rest, (opts.weight as number) ?? 1, { local: Boolean(opts.local) });
      ctx.print(added, () => added.map((b) => `backend ${b.address}:${b.port} weight ${b.weight}${b.local ? ' local' : ''} (id ${b.id})\n`).join(''));
    });

  backend
    .command('del')
    .description('remove backends: they drain (their connections stay) unless flush is given')
    .argument('<vip>', 'VIP prefix')
    .argument('<words...>', '[protocol tcp|udp] [port N] [flush] ADDRESS...')
    .addHelpText('after', '\nExamples:\n  kpbpf backend del 198.18.100.10/32 port 80 198.18.1.2\n  kpbpf backend del 198.18.100.10/32 port 80 flush 198.18.1.2\n')
    .action((prefix: string, words: string[]) => {
      const { opts, rest } = vipWords(words, { flush: null });
      if (!rest.length) throw new KpError('KP_ERR_ARG', 'backend del: expected at least one backend address');
      const control = ctx.dataplane({ load: false });
      const vip = control.findVip({ prefix, protocol: opts.protocol as 'tcp' | 'udp' | undefined, port: opts.port as number | undefined });
      const removed = control.delBackends(vip, rest, { flush: Boolean(opts.flush) });
      ctx.print(removed, () => removed.map((b) => `backend ${b.address}:${b.port} ${b.flushed ? 'flushed' : 'draining'}\n`).join(''));
    });
}
