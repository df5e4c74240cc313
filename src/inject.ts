// Named points where a test makes the process fail as a crash or a signal would, to check that what
// kpbpf leaves behind converges: KPBPF_INJECT="point=action[,point=action...]", action one of
// kill (SIGKILL to itself), hup (a SIGHUP: its handler, or the end of the process when there is
// none) or throw. Unset, a point costs one environment read.
import { KpError } from './errors.js';

export type InjectionPoint =
  | 'run.first-apply'
  | 'apply.after-writes-begin'
  | 'apply.before-publish'
  | 'apply.flush' // (a deferred batch: the slots and addresses written, the new VIPs' entries not yet)
  // a load over pins (a takeover by a restart or a newer kpbpf), after each of its steps
  | 'load.maps-pinned'
  | 'load.program-pinned'
  | 'load.switched'
  // a connection-table resize (src/dataplane/resize.ts), after each of its steps
  | 'resize.set-aside'
  | 'resize.loaded'
  | 'resize.copied'
  | 'resize.switched';

export function injectAt(point: InjectionPoint): void {
  const spec = process.env.KPBPF_INJECT;
  if (!spec) return;
  for (const item of spec.split(',')) {
    const [name, action] = item.split('=');
    if (name !== point) continue;
    if (action === 'kill') process.kill(process.pid, 'SIGKILL');
    else if (action === 'hup') {
      // What a SIGHUP does here: its handler runs, or, with none, its default action ends the
      // process. That is decided here rather than by the kernel, because a test runner may have
      // left SIGHUP ignored, which its children inherit.
      if (process.listenerCount('SIGHUP') > 0) process.kill(process.pid, 'SIGHUP');
      else process.exit(128 + 1);
    }
    else if (action === 'throw') throw new KpError('KP_ERR_STATE', `injected failure at ${point}`);
  }
}
