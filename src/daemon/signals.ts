// The long-running modes' signals: SIGHUP reloads, SIGTERM and SIGINT stop. Returns the undo.
import type { Logger } from 'pino';

export function onDaemonSignals(log: Logger, reload: () => void, stop: () => void): () => void {
  const term = (signal: string) => () => {
    log.info({ signal }, 'stopping');
    stop();
  };
  const handlers: Array<[NodeJS.Signals, () => void]> = [
    ['SIGHUP', reload],
    ['SIGTERM', term('SIGTERM')],
    ['SIGINT', term('SIGINT')],
  ];
  for (const [sig, h] of handlers) process.on(sig, h);
  return () => {
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}
