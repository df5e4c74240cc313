// kpbpf backend add|del: a VIP's backends. Removal is graceful unless `flush`. The seed's own
// form is accepted too: `kpbpf as VIP [protocol P] [port N] ADDRESS... [del [flush]]` (VPP's
// `lb as`), with `pod` as an alias (the kube-proxy plugin's `ku pod`).
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { parseProtocol, parseUint, parseWords } from './words.js';
import { KpError } from '../errors.js';
import { hostPort } from '../maps/addr.js';

function vipWords(words: string[], extra: Record<string, ((v: string) => unknown) | null>) {
  return parseWords(words, { protocol: parseProtocol, port: (v) => parseUint(v, 'port', 1, 65535), ...extra });
}

function addBackends(ctx: CliContext, prefix: string, words: string[], cmd: string): void {
  const { opts, rest } = vipWords(words, { weight: (v) => parseUint(v, 'weight', 1, 65535), local: null, terminating: null });
  if (!rest.length) throw new KpError('KP_ERR_ARG', `${cmd}: expected at least one backend address`);
  const control = ctx.dataplane({ load: false });
  const vip = control.findVip({ prefix, protocol: opts.protocol as 'tcp' | 'udp' | undefined, port: opts.port as number | undefined });
  const added = control.addBackends(vip, rest, (opts.weight as number) ?? 1, { local: Boolean(opts.local), terminating: Boolean(opts.terminating) });
  ctx.print(added, () => added.map((b) => `backend ${hostPort(b.address, b.port)} weight ${b.weight}${b.local ? ' local' : ''}${b.terminating ? ' terminating' : ''} (id ${b.id})\n`).join(''));
}

function delBackends(ctx: CliContext, prefix: string, words: string[], cmd: string): void {
  const { opts, rest } = vipWords(words, { flush: null });
  if (!rest.length) throw new KpError('KP_ERR_ARG', `${cmd}: expected at least one backend address`);
  const control = ctx.dataplane({ load: false });
  const vip = control.findVip({ prefix, protocol: opts.protocol as 'tcp' | 'udp' | undefined, port: opts.port as number | undefined });
  const removed = control.delBackends(vip, rest, { flush: Boolean(opts.flush) });
  ctx.print(removed, () => removed.map((b) => `backend ${hostPort(b.address, b.port)} ${b.flushed ? 'flushed' : 'draining'}\n`).join(''));
}

/** The seed's `as` words: `del` anywhere makes it a removal, `flush` needs `del`. */
export function parseSeedAsWords(words: string[]): { del: boolean; words: string[] } {
  const del = words.includes('del');
  if (words.includes('flush') && !del) throw new KpError('KP_ERR_ARG', 'as: flush applies to a removal (... del flush)');
  return { del, words: words.filter((w) => w !== 'del') };
}

export function registerBackend(program: Command, ctx: CliContext): void {
  const backend = program.command('backend').description("add or delete a VIP's backends (pods)");

  backend
    .command('add')
    .description('add backends; existing connections keep theirs, new ones spread over all')
    .argument('<vip>', 'VIP prefix, e.g. 198.18.100.10/32')
    .argument('<words...>', '[protocol tcp|udp] [port N] [weight W] [local] [terminating] ADDRESS...  (local: on this node, for local traffic policies; terminating: serving but terminating, used only while no ready backend exists)')
    .addHelpText('after', '\nExamples:\n  kpbpf backend add 198.18.100.10/32 protocol tcp port 80 198.18.1.2 198.18.2.2\n  kpbpf backend add 198.18.100.10/32 port 80 local 198.18.1.2\n')
    .action((prefix: string, words: string[]) => addBackends(ctx, prefix, words, 'backend add'));

  backend
    .command('del')
    .description('remove backends: they drain (their connections stay) unless flush is given')
    .argument('<vip>', 'VIP prefix')
    .argument('<words...>', '[protocol tcp|udp] [port N] [flush] ADDRESS...')
    .addHelpText('after', '\nExamples:\n  kpbpf backend del 198.18.100.10/32 port 80 198.18.1.2\n  kpbpf backend del 198.18.100.10/32 port 80 flush 198.18.1.2\n')
    .action((prefix: string, words: string[]) => delBackends(ctx, prefix, words, 'backend del'));

  program
    .command('as')
    .alias('pod')
    .description("the seed's form of backend add/del (VPP's lb as, the kube-proxy plugin's ku pod)")
    .argument('<vip>', 'VIP prefix')
    .argument('<words...>', '[protocol tcp|udp] [port N] ADDRESS... [del [flush]]')
    .addHelpText('after', '\nExamples:\n  kpbpf as 198.18.100.10/32 port 80 198.18.1.2 198.18.2.2\n  kpbpf pod 198.18.100.10/32 port 80 198.18.1.2 del flush\n')
    .action((prefix: string, words: string[]) => {
      const seed = parseSeedAsWords(words);
      if (seed.del) delBackends(ctx, prefix, seed.words, 'as del');
      else addBackends(ctx, prefix, seed.words, 'as');
    });
}
