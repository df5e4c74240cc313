// Running commands (optionally inside a network namespace) with a time limit.
import { spawn } from 'node:child_process';
import { KpError } from '../errors.js';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  ns?: string;
  input?: string;
  timeoutMs?: number;
  /** Do not throw on a non-zero exit or a timeout. */
  allowFail?: boolean;
}

export function nsArgv(ns: string | undefined, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = nsArgv(opts.ns, argv);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(full[0], full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new KpError('KP_ERR_NET', `${full.join(' ')}: ${e.message}`, { op: full[0] }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const res = { code, signal, stdout, stderr, ms: performance.now() - t0, timedOut };
      if (!opts.allowFail && (code !== 0 || timedOut)) {
        const why = timedOut ? `timed out after ${opts.timeoutMs} ms` : `exit ${code ?? signal}`;
        reject(new KpError('KP_ERR_NET', `${full.slice(0, 6).join(' ')}: ${why}: ${stderr.trim().slice(0, 500)}`, { op: full[0] }));
      } else resolve(res);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
