// kpbpf run -f FILE [--metrics ADDR:PORT] [--detach-on-exit]: the long-running mode (src/daemon).
import type { Command } from 'commander';
import pino from 'pino';
import type { CliContext } from './context.js';
import { Daemon, parseListen } from '../daemon/run.js';

export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .description('keep running: apply the config file, again when it changes and on SIGHUP; serve metrics and health')
    .requiredOption('-f, --file <path>', 'config file (JSON), as kpbpf apply takes it')
    .option('--metrics <addr:port>', 'serve /metrics (Prometheus) and /healthz here', '127.0.0.1:10249')
    .option('--no-metrics', 'no HTTP server')
    .option('--detach-on-exit', 'on SIGTERM, detach every interface and cgroup (default: keep forwarding)')
    .option('--healthcheck-address <addr>', "where VIPs' health_check_node_port listen", '0.0.0.0')
    .addHelpText('after', '\nExamples:\n  kpbpf run -f /etc/kpbpf/config.json\n  kpbpf run -f config.json --metrics 127.0.0.1:10249 --detach-on-exit\n')
    .action(async (opts: { file: string; metrics: string | false; detachOnExit?: boolean; healthcheckAddress: string }) => {
      if (opts.metrics) parseListen(opts.metrics); // a bad address is refused before anything is loaded
      // One JSON object per line on stderr, as a service manager collects it.
      const log = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
      await new Daemon({ file: opts.file, bpffs: ctx.options.bpffs, metrics: opts.metrics || undefined, detachOnExit: Boolean(opts.detachOnExit), healthCheckAddress: opts.healthcheckAddress, log }).run();
    });
}
