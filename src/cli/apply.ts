// kpbpf apply -f FILE: make the running state equal to a JSON config, all or nothing.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { loadConfigSource } from '../config/validate.js';
import { formatOp } from '../config/diff.js';
import { Control } from '../dataplane/control.js';
import { checkInterfaces, EMPTY_STATE, planConfig, type ApplyResult } from '../dataplane/apply.js';

export function registerApply(program: Command, ctx: CliContext): void {
  program
    .command('apply')
    .description('apply a JSON config: computes the difference to the running state and applies it')
    .requiredOption('-f, --file <path>', "config file (JSON); '-' reads standard input")
    .option('--dry-run', 'validate and print the planned changes without applying them')
    .addHelpText('after', '\nExamples:\n  kpbpf apply -f services.json\n  kpbpf apply -f services.json --dry-run --json\n')
    .action((opts: { file: string; dryRun?: boolean }) => {
      // Read once, and throws before anything is touched. Attachments are managed only by a config
      // that lists its interfaces (even as []).
      const { config, manageInterfaces } = loadConfigSource(opts.file);
      let result: ApplyResult;
      if (opts.dryRun && !Control.isLoaded(ctx.options.bpffs)) {
        // A dry run loads nothing: plan against an empty data plane, with the checks apply makes.
        const plan = planConfig(config, EMPTY_STATE, manageInterfaces);
        checkInterfaces(plan);
        result = { plan, ops: plan.map(formatOp) };
      } else {
        // buckets: the size of a first load; a change of size on a loaded data plane is part of the plan.
        const control = ctx.dataplane({ load: !opts.dryRun, buckets: config.conf.buckets, reload: false, write: !opts.dryRun });
        result = control.apply(config, { dryRun: Boolean(opts.dryRun), manageInterfaces });
      }
      ctx.print(result, () =>
        result.ops.length
          ? result.ops.map((op) => `${opts.dryRun ? 'would ' : ''}${op}\n`).join('') + `${result.ops.length} change(s)${opts.dryRun ? ' planned' : ' applied'}\n`
          : 'no changes\n',
      );
    });
}
