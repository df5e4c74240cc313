// kpbpf conf [buckets N] [timeout S]: flow table size per CPU and flow idle timeout.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { parseUint, parseWords } from './words.js';
import { KpError } from '../errors.js';

export const MIN_BUCKETS = 1024;
export const MAX_BUCKETS = 1 << 24;

export function parseBuckets(v: string): number {
  const n = parseUint(v, 'buckets', MIN_BUCKETS, MAX_BUCKETS);
  if ((n & (n - 1)) !== 0) throw new KpError('KP_ERR_ARG', `buckets: expected a power of two from ${MIN_BUCKETS} to ${MAX_BUCKETS}, got ${v}`);
  return n;
}

export function registerConf(program: Command, ctx: CliContext): void {
  program
    .command('conf')
    .description('show or set the flow table size (buckets per CPU) and the flow idle timeout (seconds)')
    .argument('[words...]', 'buckets N, timeout S')
    .addHelpText('after', '\nExamples:\n  kpbpf conf\n  kpbpf conf buckets 65536 timeout 40\n')
    .action((words: string[]) => {
      const { opts, rest } = parseWords(words, {
        buckets: parseBuckets,
        timeout: (v) => parseUint(v, 'timeout', 1, 86400),
      });
      if (rest.length) throw new KpError('KP_ERR_ARG', `conf: unexpected argument '${rest[0]}' (expected buckets or timeout)`);
      const control = ctx.dataplane({ load: true, buckets: opts.buckets as number | undefined });
      if (opts.buckets !== undefined || opts.timeout !== undefined) {
        control.setConf({ buckets: opts.buckets as number | undefined, timeout: opts.timeout as number | undefined });
      }
      const conf = control.conf();
      ctx.print(conf, () => `buckets ${conf.buckets} timeout ${conf.timeout}\n`);
    });
}
