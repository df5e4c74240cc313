// The list/watch loop against the fake API server (TLS with a generated CA, bearer tokens) over a
// Unix socket: no IP traffic. Each fault an API server produces is injected and the loop must go on.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FakeApiServer } from '../../src/testbed/fakeapi.js';
import { makeCerts } from '../../src/testbed/certs.js';
import { KubeClient } from '../../src/kube/client.js';
import { Reflector } from '../../src/kube/reflector.js';
import { kubeconfigConnection } from '../../src/kube/connection.js';
import { PROXY_LABEL_SELECTOR, type Service } from '../../src/kube/types.js';
import { svc } from '../helpers/kubeobjects.js';

const dir = mkdtempSync(join(tmpdir(), 'kpbpf-reflector-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const certs = makeCerts(['127.0.0.1'], mkdtempSync(join(dir, 'c-')));
const sock = join(dir, 'api.sock');
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, 'token-1\n');
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(
  kubeconfig,
  `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: ${certs.ca.toString('base64')}\nusers:\n- name: u\n  user:\n    tokenFile: token\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
);

const log = pino({ level: 'silent' });
const api = new FakeApiServer({ tokens: ['token-1'], tls: { key: certs.key, cert: certs.cert } });
await api.listen(sock);
t.teardown(() => api.close());

const until = async (what: string, f: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function start(o: { headersMs?: number } = {}) {
  const conn = { ...kubeconfigConnection(kubeconfig), socketPath: sock };
  const client = new KubeClient(conn, { headersMs: o.headersMs ?? 2000, watchSlackMs: 2000 });
  const seen = new Map<string, Service>();
  const calls = { upsert: 0, remove: 0, listed: 0, errors: [] as number[], relists: 0, events: 0 };
  let throwOn: string | undefined;
  const r = new Reflector<Service>(
    client,
    { resource: 'services', path: '/api/v1/services', labelSelector: PROXY_LABEL_SELECTOR, backoffMs: { min: 20, max: 100 }, watchTimeoutS: 60, log, metrics: { event: () => calls.events++, relist: () => calls.relists++, watchError: (_r, s) => calls.errors.push(s), handlerError: () => {} } },
    {
      upsert: (s) => {
        calls.upsert++;
        if (s.metadata?.name === throwOn) throw new Error('handler bug');
        seen.set(s.metadata!.name!, s);
      },
      remove: (s) => {
        calls.remove++;
        seen.delete(s.metadata!.name!);
      },
      listed: () => calls.listed++,
    },
  );
  r.start();
  return { r, seen, calls, client, throwOnName: (n: string) => (throwOn = n) };
}

api.put('services', svc('a'));
api.put('services', { ...svc('other-proxy'), metadata: { name: 'other-proxy', namespace: 'default', labels: { 'service.kubernetes.io/service-proxy-name': 'x' } } });

const x = start();
t.teardown(async () => {
  await x.r.stop();
  x.client.close();
});

t.test('list, then watch: adds, changes and deletes arrive; the proxy-name selector is the server\'s', async (t) => {
  await x.r.synced;
  t.same([...x.seen.keys()], ['a'], 'listed; the other proxy\'s service is filtered by the label selector');
  await until('watch', () => api.watchCount('services') === 1);
  api.put('services', svc('b'));
  await until('b', () => x.seen.has('b'));
  api.put('services', svc('b', { clusterIP: '198.18.100.2' }));
  await until('b changed', () => x.seen.get('b')?.spec?.clusterIP === '198.18.100.2');
  api.delete('services', 'default', 'b');
  await until('b gone', () => !x.seen.has('b'));
  t.equal(api.stats.lists.services, 1, 'one list');
});

t.test('a watch the server ends (timeoutSeconds) resumes from the last version: no relist', async (t) => {
  const lists = api.stats.lists.services;
  api.endWatches();
  await until('re-watch', () => api.watchCount('services') === 1 && api.stats.watches.services >= 2);
  api.put('services', svc('c'));
  await until('c', () => x.seen.has('c'));
  t.equal(api.stats.lists.services, lists, 'no list');
});

t.test('bookmarks move the version on: after a compaction the watch resumes from the bookmark, no 410', async (t) => {
  const lists = api.stats.lists.services;
  // Changes to other resources move the version past what this watch has seen.
  for (let i = 0; i < 5; i++) api.put('nodes', { metadata: { name: `n${i}` } });
  api.bookmark();
  await new Promise((r) => setTimeout(r, 100));
  api.compact();
  api.endWatches();
  await until('re-watch', () => api.watchCount('services') === 1);
  api.put('services', svc('d'));
  await until('d', () => x.seen.has('d'));
  t.equal(api.stats.lists.services, lists, 'no relist');
});

t.test('410 Gone: a relist, which calls handlers only for what changed', async (t) => {
  const lists = api.stats.lists.services;
  api.endWatches();
  // While no watch runs, something changes and the history is compacted away.
  api.resetWatches();
  const before = { ...x.calls };
  api.put('services', svc('e'));
  api.delete('services', 'default', 'c');
  api.put('nodes', { metadata: { name: 'n9' } });
  api.compact();
  api.resetWatches();
  await until('relist', () => api.stats.lists.services === lists + 1 || (x.seen.has('e') && !x.seen.has('c')));
  await until('e', () => x.seen.has('e') && !x.seen.has('c'));
  t.ok(x.calls.upsert - before.upsert <= 1, `one upsert at most (e), got ${x.calls.upsert - before.upsert}`);
  t.ok(x.calls.remove - before.remove <= 1, 'one remove at most (c)');
});

t.test('resets, error statuses and a stall: retried with back-off, never given up', async (t) => {
  api.inject({ kind: 'status', status: 500, only: 'watch' }, { kind: 'status', status: 429, retryAfter: 0, only: 'watch' }, { kind: 'status', status: 403, only: 'watch' }, { kind: 'reset', only: 'watch' });
  const errors = x.calls.errors.length;
  api.resetWatches();
  await until('recovered', () => api.watchCount('services') === 1 && api.stats.faults >= 4);
  t.same(x.calls.errors.slice(errors), [0, 500, 429, 403, 0], 'the reset, then each fault, counted with its status');
  api.put('services', svc('f'));
  await until('f', () => x.seen.has('f'));
});

t.test('a stall before headers is abandoned after the header timeout', async (t) => {
  const y = start({ headersMs: 200 });
  api.inject({ kind: 'stall', only: 'list' });
  await y.r.synced;
  t.ok(y.calls.errors.includes(0), 'the stalled list counted as an error without status');
  t.ok(y.seen.has('f'), 'listed after the stall');
  await y.r.stop();
  y.client.close();
});

t.test('a rotated token file is read at the next request', async (t) => {
  api.tokens.clear();
  api.tokens.add('token-2');
  const unauth = api.stats.unauthorized;
  api.resetWatches();
  await until('401 seen', () => api.stats.unauthorized > unauth);
  writeFileSync(`${tokenFile}.new`, 'token-2\n');
  renameSync(`${tokenFile}.new`, tokenFile);
  api.put('services', svc('g'));
  await until('g', () => x.seen.has('g'));
  t.ok(x.calls.errors.includes(401));
});

t.test('a handler that throws does not end the watch', async (t) => {
  x.throwOnName('h');
  api.put('services', svc('h'));
  api.put('services', svc('i'));
  await until('i', () => x.seen.has('i'));
  t.notOk(x.seen.has('h'));
});

t.test('kubeconfig errors name the problem', async (t) => {
  const bad = join(dir, 'bad');
  writeFileSync(bad, 'apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\n');
  t.throws(() => kubeconfigConnection(bad), /no context named 'nope'/);
  writeFileSync(bad, `apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://198.18.0.1'}\nusers:\n- name: u\n  user:\n    exec: {command: aws}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`);
  t.throws(() => kubeconfigConnection(bad), /uses exec, which kpbpf does not run/);
  t.throws(() => kubeconfigConnection(join(dir, 'missing')), /--kubeconfig: cannot read/);
});

t.test('a list is garbage once it is in the store (not kept by the loop waiting in the watch)', async (t) => {
  // WeakRefs and a forced collection need a flag: a child process of its own, with the real client
  // against this file's API server.
  const { execFile } = await import('node:child_process');
  const { pathToFileURL } = await import('node:url');
  const dist = (m: string) => JSON.stringify(pathToFileURL(new URL(`../../dist/kube/${m}.js`, import.meta.url).pathname).href);
  const code = `const { Reflector } = await import(${dist('reflector')});
const { KubeClient } = await import(${dist('client')});
const { kubeconfigConnection } = await import(${dist('connection')});
const client = new KubeClient({ ...kubeconfigConnection(${JSON.stringify(kubeconfig)}), socketPath: ${JSON.stringify(sock)} });
let refs;
const list = client.list.bind(client);
client.list = async (...a) => {
  const l = await list(...a);
  refs = [new WeakRef(l.items), new WeakRef(l.items[0])];
  return l;
};
const log = { info() {}, warn() {} };
const r = new Reflector(client, { resource: 'services', path: '/api/v1/services', log, watchTimeoutS: 60, transform: (o) => ({ metadata: o.metadata }) }, { upsert() {}, remove() {} });
r.start();
await r.synced;
await new Promise((ok) => setTimeout(ok, 50));
globalThis.gc();
console.log(JSON.stringify(refs.map((w) => w.deref() === undefined)));
process.exit(0);`;
  const out = await new Promise<string>((ok, fail) => execFile(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 }, (e, so) => (e ? fail(e) : ok(so))));
  t.same(JSON.parse(out), [true, true], 'the raw list and its objects are collected; the store keeps the transformed copies');
});
