// kpbpf run's log as a test reads it: one JSON object per stderr line, collected as they come, and
// a wait for the first line (from an index on) that a predicate accepts.
import type { ChildProcess } from 'node:child_process';

export type LogLine = Record<string, unknown>;

export interface DaemonLog {
  lines: LogLine[];
  /** Resolves with the first line from `from` on that `pred` accepts; throws after `ms` or when the process exits. */
  waitLog(pred: (l: LogLine) => boolean, ms?: number, from?: number): Promise<LogLine>;
}

export function watchLog(child: ChildProcess): DaemonLog {
  const lines: LogLine[] = [];
  let buf = '';
  child.stderr!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ msg: `not JSON: ${line}` }); // a stack trace would show up here
      }
    }
  });
  const waitLog = async (pred: (l: LogLine) => boolean, ms = 10_000, from = 0) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = lines.slice(from).find(pred);
      if (found) return found;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no such log line; got: ${JSON.stringify(lines.slice(-10)).slice(0, 3000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { lines, waitLog };
}
