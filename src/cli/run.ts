// kpbpf run -f FILE | --kubernetes: the long-running modes. With a file (src/daemon) the file is the
// desired state; with --kubernetes (src/kube) Services and EndpointSlices from the API are, and the
// file, if any, gives conf and interfaces.
import type { Command } from 'commander';
import { hostname } from 'node:os';
import pino from 'pino';
import { KpError } from '../errors.js';
import type { CliContext } from './context.js';
import { Daemon, parseListen } from '../daemon/run.js';
import { KubeDaemon } from '../kube/daemon.js';
import { inClusterConnection, kubeconfigConnection } from '../kube/connection.js';
import { defaultCgroupPath } from '../dataplane/cgroups.js';
import { cgroupId } from '../loader/cgroup.js';

interface RunOpts {
  file?: string;
  metrics: string | false;
  detachOnExit?: boolean;
  healthcheckAddress: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  nodeName?: string;
  healthz: string | false;
  cgroup?: string | true;
}

/** --node-name, else $NODE_NAME (the DaemonSet's spec.nodeName), else the hostname; lower case, as Node names are. */
export function nodeNameOf(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const name = (given ?? (env.NODE_NAME || hostname())).trim().toLowerCase();
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new KpError('KP_ERR_ARG', `--node-name: expected a Kubernetes node name (lower-case DNS subdomain), got '${name}'`);
  return name;
}

export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .description('keep running: apply the config file (again when it changes and on SIGHUP), or serve the Kubernetes API\'s Services (--kubernetes); serve metrics and health')
    .option('-f, --file <path>', 'config file (JSON), as kpbpf apply takes it; with --kubernetes: conf and interfaces only')
    .option('--kubernetes', "take Services and EndpointSlices from the Kubernetes API (in a pod: its service account), as kube-proxy")
    .option('--kubeconfig <file>', 'with --kubernetes: the API server and credentials from this kubeconfig (its current context)')
    .option('--node-name <name>', 'with --kubernetes: this node\'s name (default: $NODE_NAME, then the hostname)')
    .option('--metrics <addr:port>', 'serve /metrics (Prometheus); in file mode /healthz too', '127.0.0.1:10249')
    .option('--no-metrics', 'no metrics server')
    .option('--healthz <addr:port>', "with --kubernetes: serve /healthz and /livez as kube-proxy's", '0.0.0.0:10256')
    .option('--no-healthz', 'with --kubernetes: no health server')
    .option('--cgroup [path]', "with --kubernetes: serve the node's own sockets in this cgroup v2 directory too (default $KPBPF_CGROUP, else the cgroup2 mount), as kube-proxy's OUTPUT rules do")
    .option('--detach-on-exit', 'on SIGTERM, detach every interface and cgroup (default: keep forwarding)')
    .option('--healthcheck-address <addr>', "where VIPs' health_check_node_port listen", '0.0.0.0')
    .addHelpText(
      'after',
      '\nExamples:\n  kpbpf run -f /etc/kpbpf/config.json\n  kpbpf run -f config.json --metrics 127.0.0.1:10249 --detach-on-exit\n  kpbpf run --kubernetes -f /etc/kpbpf/conf.json            # in a DaemonSet pod\n  kpbpf run --kubernetes --kubeconfig /etc/kpbpf/kubeconfig --node-name node-a\n',
    )
    .action(async (opts: RunOpts) => {
      // Bad arguments are refused before anything is loaded.
      if (opts.metrics) parseListen(opts.metrics);
      if (!opts.kubernetes) {
        if (!opts.file) throw new KpError('KP_ERR_ARG', 'run: expected -f FILE (a config file) or --kubernetes');
        for (const o of ['kubeconfig', 'nodeName', 'cgroup'] as const) if (opts[o]) throw new KpError('KP_ERR_ARG', `--${o === 'nodeName' ? 'node-name' : o}: only with --kubernetes`);
      }
      // One JSON object per line on stderr, as a service manager collects it.
      const log = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
      if (opts.kubernetes) {
        if (opts.healthz) parseListen(opts.healthz, '--healthz');
        const nodeName = nodeNameOf(opts.nodeName);
        const cgroup = opts.cgroup === true ? defaultCgroupPath() : opts.cgroup;
        if (cgroup) cgroupId(cgroup); // a bad path is refused before anything is loaded
        const connection = opts.kubeconfig ? kubeconfigConnection(opts.kubeconfig) : inClusterConnection();
        await new KubeDaemon({
          connection,
          nodeName,
          file: opts.file,
          bpffs: ctx.options.bpffs,
          metrics: opts.metrics || undefined,
          healthz: opts.healthz || undefined,
          healthCheckAddress: opts.healthcheckAddress,
          cgroup,
          detachOnExit: Boolean(opts.detachOnExit),
          log,
        }).run();
        return;
      }
      await new Daemon({ file: opts.file!, bpffs: ctx.options.bpffs, metrics: opts.metrics || undefined, detachOnExit: Boolean(opts.detachOnExit), healthCheckAddress: opts.healthcheckAddress, log }).run();
    });
}
