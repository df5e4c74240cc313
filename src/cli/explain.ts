// kpbpf explain CLIENT:PORT VIP:PORT [tcp|udp]: what the data plane does with one flow.
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { KpError } from '../errors.js';
import { explain, formatExplain, parseHostPort } from '../dataplane/explain.js';

export function registerExplain(program: Command, ctx: CliContext): void {
  program
    .command('explain')
    .description('which VIP a flow matches, its connection record, and the backend a new connection would get and why')
    .argument('<client>', 'the client address and port, e.g. 198.18.0.2:40000')
    .argument('<vip>', 'the address and port it sends to (a cluster IP, node address:node port, LoadBalancer IP)')
    .argument('[protocol]', 'tcp (default) or udp')
    .addHelpText('after', '\nExamples:\n  kpbpf explain 198.18.0.2:40000 198.18.100.10:80\n  kpbpf explain 198.18.0.2:40000 198.18.0.1:30964 udp --json\n')
    .action((client: string, vip: string, protocol?: string) => {
      parseHostPort(client, 'client');
      parseHostPort(vip, 'vip');
      const proto = (protocol ?? 'tcp').toLowerCase();
      if (proto !== 'tcp' && proto !== 'udp') throw new KpError('KP_ERR_ARG', `explain: protocol: expected tcp or udp, got '${protocol}'`);
      const control = ctx.dataplane({ load: false, write: false });
      const e = explain(control, client, vip, proto as 'tcp' | 'udp');
      ctx.print(e, () => formatExplain(e));
    });
}
