// The fake API server as a process, for a network namespace of its own (an end-to-end test's node):
// `node fakeapi-main.js HOST PORT CERT KEY TOKEN...`. Commands come on stdin as JSON lines and each
// is answered on stdout by one JSON line: {"id":N,"ok":true,...} or {"id":N,"error":"..."}. With
// FAKEAPI_STATE=FILE, the objects of FILE ({"services": [...], "endpointslices": [...], "nodes":
// [...]}) are there from the start (the benchmark's 10k services).
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { FakeApiServer, type Fault, type Resource } from './fakeapi.js';

interface Command {
  id: number;
  op: 'put' | 'delete' | 'compact' | 'bookmark' | 'endWatches' | 'resetWatches' | 'inject' | 'restart' | 'tokens' | 'stats';
  resource?: Resource;
  object?: Record<string, unknown>;
  namespace?: string;
  name?: string;
  faults?: Fault[];
  downMs?: number;
  tokens?: string[];
}

async function main(): Promise<void> {
  const [host, port, certFile, keyFile, ...tokens] = process.argv.slice(2);
  const api = new FakeApiServer({ tokens, tls: { cert: readFileSync(certFile), key: readFileSync(keyFile) } });
  if (process.env.FAKEAPI_STATE) {
    const state = JSON.parse(readFileSync(process.env.FAKEAPI_STATE, 'utf8')) as Partial<Record<Resource, Record<string, unknown>[]>>;
    for (const [resource, objs] of Object.entries(state)) api.putMany(resource as Resource, objs ?? []);
  }
  await api.listen(Number(port), host);
  process.stdout.write(JSON.stringify({ listening: `${host}:${port}` }) + '\n');
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const c = JSON.parse(line) as Command;
    try {
      let out: Record<string, unknown> = {};
      switch (c.op) {
        case 'put':
          out = { object: api.put(c.resource!, c.object!) };
          break;
        case 'delete':
          out = { deleted: api.delete(c.resource!, c.namespace, c.name!) };
          break;
        case 'compact':
          api.compact();
          break;
        case 'bookmark':
          api.bookmark();
          break;
        case 'endWatches':
          api.endWatches();
          break;
        case 'resetWatches':
          api.resetWatches();
          break;
        case 'inject':
          api.inject(...(c.faults ?? []));
          break;
        case 'restart':
          await api.restart(c.downMs ?? 500);
          break;
        case 'tokens':
          api.tokens.clear();
          for (const t of c.tokens ?? []) api.tokens.add(t);
          break;
        case 'stats':
          out = { stats: api.stats, watches: api.watchCount(), resourceVersion: api.resourceVersion() };
          break;
      }
      process.stdout.write(JSON.stringify({ id: c.id, ok: true, ...out }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: c.id, error: (e as Error).message }) + '\n');
    }
  }
  await api.close();
}

void main();
