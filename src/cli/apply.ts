// kpbpf apply -f FILE: make the running state equal to a JSON config, all or nothing.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { readFileSync } from 'node:fs';
import { loadConfigFile } from '../config/validate.js';

export function registerApply(program: Command, ctx: CliContext): void {
  program
    .command('apply')
    .description('apply a JSON config: computes the difference to the running state and applies it')
    .requiredOption('-f, --file <path>', 'config file (JSON)')
    .option('--dry-run', 'validate and print the planned changes without applying them')
    .addHelpText('after', '\nExamples:\n  kpbpf apply -f services.json\n  kpbpf apply -f services.json --dry-run --json\n')
    .action((opts: { file: string; dryRun?: boolean }) => {
      const config = loadConfigFile(opts.file); // throws before anything is touched
      const control = ctx.dataplane({ load: true, buckets: config.conf.buckets });
      // Attachments are managed only by a config that lists its interfaces (even as []).
      const manageInterfaces = 'interfaces' in (JSON.parse(readFileSync(opts.file, 'utf8')) as object);
      const result = control.apply(config, { dryRun: Boolean(opts.dryRun), manageInterfaces });
      ctx.print(result, () =>
        result.ops.length
          ? result.ops.map((op) => `${opts.dryRun ? 'would ' : ''}${op}\n`).join('') + `${result.ops.length} change(s)${opts.dryRun ? ' planned' : ' applied'}\n`
          : 'no changes\n',
      );
    });
}
