// The fake API server (src/testbed/fakeapi-main.ts) as a process in a test's namespace, driven by
// JSON-line commands: put and delete objects, inject faults, restart.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { KPBPF } from './e2e.js';
import { makeCerts, writeKubeconfig } from '../../src/testbed/certs.js';
import type { Fault, Resource } from '../../src/testbed/fakeapi.js';

const MAIN = resolve(KPBPF, '../../dist/testbed/fakeapi-main.js');

export interface FakeApiProc {
  child: ChildProcess;
  kubeconfig: string;
  tokenFile: string;
  call(cmd: Record<string, unknown>): Promise<Record<string, unknown>>;
  put(resource: Resource, object: object): Promise<void>;
  del(resource: Resource, namespace: string | undefined, name: string): Promise<void>;
  inject(...faults: Fault[]): Promise<void>;
}

/** Starts the server on 127.0.0.1:6443 inside `ns` (its loopback: no traffic leaves the namespace). */
export async function startFakeApi(ns: string, dir: string, children: ChildProcess[]): Promise<FakeApiProc> {
  const certs = makeCerts(['127.0.0.1'], dir);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'node-token\n');
  const kubeconfig = join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, 'https://127.0.0.1:6443', certs.caFile, tokenFile);
  writeFileSync(join(dir, 'server.crt'), certs.cert);
  writeFileSync(join(dir, 'server.key'), certs.key);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, MAIN, '127.0.0.1', '6443', join(dir, 'server.crt'), join(dir, 'server.key'), 'node-token'], { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child); // killed at the harness's teardown
  let buf = '';
  let id = 0;
  const waiting = new Map<number, (r: Record<string, unknown>) => void>();
  let onListen: () => void;
  const listening = new Promise<void>((r) => (onListen = r));
  child.stdout!.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      if (line.listening) onListen();
      else waiting.get(line.id as number)?.(line);
    }
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  await Promise.race([listening, new Promise((_, fail) => setTimeout(() => fail(new Error(`fake API did not start: ${err}`)), 10_000))]);
  const call = (cmd: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((ok, fail) => {
      const n = ++id;
      waiting.set(n, (r) => (r.error ? fail(new Error(String(r.error))) : ok(r)));
      child.stdin!.write(JSON.stringify({ id: n, ...cmd }) + '\n');
    });
  return {
    child,
    kubeconfig,
    tokenFile,
    call,
    put: async (resource, object) => void (await call({ op: 'put', resource, object })),
    del: async (resource, namespace, name) => void (await call({ op: 'delete', resource, namespace, name })),
    inject: async (...faults) => void (await call({ op: 'inject', faults })),
  };
}
