// kpbpf command line: global options, one module per command, errors as "kpbpf: <message>"; exit 2
// for a usage error, 1 for any other.
import { Command, CommanderError } from 'commander';
import { KpError } from '../errors.js';
import { CliContext, type CliIo } from './context.js';
import { registerAttach } from './attach.js';
import { registerDetach } from './detach.js';
import { registerConf } from './conf.js';
import { registerVip } from './vip.js';
import { registerBackend } from './backend.js';
import { registerShow } from './show.js';
import { registerApply } from './apply.js';
import { registerSet } from './set.js';
import { registerRun } from './run.js';
import { registerExplain } from './explain.js';

const stdio: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

export function buildProgram(io: CliIo = stdio): { program: Command; ctx: CliContext } {
  const program = new Command('kpbpf');
  const ctx = new CliContext(io, program);
  program
    .description('kube-proxy data plane in XDP: VIPs, backends, connection tracking, Maglev')
    .option('--bpffs <dir>', 'bpffs mount holding kpbpf pins (env KPBPF_BPFFS, default /sys/fs/bpf)')
    .option('--json', 'machine-readable output')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run kpbpf help <command> for usage)');
  for (const register of [registerAttach, registerDetach, registerConf, registerVip, registerBackend, registerShow, registerApply, registerSet, registerRun, registerExplain]) {
    register(program, ctx);
  }
  for (const cmd of program.commands) cmd.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
  return { program, ctx };
}

/** Runs one invocation in-process; returns the exit code instead of exiting (tests call this). */
export async function main(argv: string[], io: CliIo = stdio): Promise<number> {
  const { program, ctx } = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message; help and version are not failures, everything else
      // it refuses is a usage error (commander's own code for those is 1).
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    }
    if (e instanceof KpError) {
      io.err(`kpbpf: ${e.message}\n`);
      for (const d of e.details ?? []) io.err(`  ${d}\n`);
      if (e.log && process.env.KPBPF_VERBOSE) io.err(e.log + '\n');
      else if (e.log) io.err('  (set KPBPF_VERBOSE=1 to print the verifier log)\n');
      return e.code === 'KP_ERR_ARG' ? 2 : 1;
    }
    io.err(`kpbpf: ${(e as Error).stack ?? e}\n`);
    return 1;
  } finally {
    ctx.close();
  }
}
