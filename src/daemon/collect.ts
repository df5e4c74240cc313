// Housekeeping both long-running modes share: drained backends that no connection uses any more
// are freed (a walk of kp_ct, made only while some backend drains).
import type { Logger } from 'pino';
import type { Control } from '../dataplane/control.js';

export function collectDrained(control: Control, log: Logger): void {
  if (!control.vips.hasDraining()) return;
  try {
    const freed = control.vips.collectDrained(control.conf().timeouts);
    if (freed.length) log.info({ backends: freed }, 'drained backends freed (no connection uses them)');
  } catch (e) {
    log.error({ error: (e as Error).message }, 'freeing drained backends failed');
  }
}
