// A Kubernetes API server at the protocol level, for tests and the benchmark: LIST (paged, label
// and field selectors) and WATCH (newline-delimited JSON events, bookmarks, 410 Gone for a version
// older than its history) of services, endpointslices and nodes, bearer tokens, answered as the
// real API server answers. Faults can be injected: error statuses, resets, stalls before headers,
// watches ended or broken, a restart.
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';

export type Resource = 'services' | 'endpointslices' | 'nodes';

export const RESOURCE_PATHS: Record<string, Resource> = {
  '/api/v1/services': 'services',
  '/apis/discovery.k8s.io/v1/endpointslices': 'endpointslices',
  '/api/v1/nodes': 'nodes',
};
const KINDS: Record<Resource, { kind: string; apiVersion: string }> = {
  services: { kind: 'Service', apiVersion: 'v1' },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  nodes: { kind: 'Node', apiVersion: 'v1' },
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;
type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface Watch {
  resource: Resource;
  match: (o: Obj) => boolean;
  res: ServerResponse;
  bookmarks: boolean;
  timer: NodeJS.Timeout;
}

/** A fault for the next request (of a kind, `only`, and of a resource, if given). */
export type Fault = ({ kind: 'status'; status: number; retryAfter?: number } | { kind: 'reset' } | { kind: 'stall' }) & { only?: 'list' | 'watch'; resource?: Resource };

export interface FakeApiStats {
  lists: Record<string, number>;
  watches: Record<string, number>;
  unauthorized: number;
  faults: number;
}

const keyOf = (o: Obj) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** kubectl's label selector grammar, the equality-based part: k, !k, k=v, k==v, k!=v. */
export function labelMatcher(selector: string | null): (labels: Record<string, string> | undefined) => boolean {
  if (!selector) return () => true;
  const terms = selector.split(',').map((s) => s.trim()).filter(Boolean).map((term) => {
    let m: RegExpExecArray | null;
    if ((m = /^!([^=!]+)$/.exec(term))) return (l: Record<string, string>) => !(m![1] in l);
    if ((m = /^([^=!]+)!=(.*)$/.exec(term))) return (l: Record<string, string>) => l[m![1]] !== m![2];
    if ((m = /^([^=!]+)==?(.*)$/.exec(term))) return (l: Record<string, string>) => l[m![1]] === m![2];
    if ((m = /^([^=!]+)$/.exec(term))) return (l: Record<string, string>) => m![1] in l;
    throw new Error(`unable to parse requirement: ${term}`);
  });
  return (labels) => terms.every((f) => f(labels ?? {}));
}

/** Field selectors the API server supports on every object: metadata.name and metadata.namespace. */
export function fieldMatcher(selector: string | null): (o: Obj) => boolean {
  if (!selector) return () => true;
  const terms = selector.split(',').map((term) => {
    const m = /^metadata\.(name|namespace)(==?|!=)(.*)$/.exec(term.trim());
    if (!m) throw new Error(`field label not supported: ${term}`);
    return (o: Obj) => ((o.metadata?.[m[1]] ?? '') === m[3]) === (m[2] !== '!=');
  });
  return (o) => terms.every((f) => f(o));
}

export class FakeApiServer {
  private rv = 1000;
  private readonly objects = new Map<Resource, Map<string, Obj>>(Object.keys(KINDS).map((r) => [r as Resource, new Map()]));
  private readonly history: Array<{ rv: number; resource: Resource; type: EventType; obj: Obj }> = [];
  /** a watch from a version below this answers 410 Gone (the watch cache's window) */
  private oldest = 0;
  private readonly watches = new Set<Watch>();
  private readonly sockets = new Set<Socket>();
  private readonly faults: Fault[] = [];
  readonly tokens = new Set<string>();
  readonly stats: FakeApiStats = { lists: {}, watches: {}, unauthorized: 0, faults: 0 };
  private server: Server;
  private listenArgs?: unknown[];
  /** how many entries of history are kept (older versions: 410) */
  historyLimit = 100_000;

  constructor(o: { tokens: string[]; tls?: { key: Buffer; cert: Buffer } }) {
    for (const t of o.tokens) this.tokens.add(t);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    this.server = o.tls ? createHttpsServer({ key: o.tls.key, cert: o.tls.cert }, handler) : createHttpServer(handler);
    this.server.on(o.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** listen(port, host) or listen(path), as net.Server takes them. */
  listen(...args: unknown[]): Promise<void> {
    this.listenArgs = args;
    return new Promise((ok, fail) => {
      this.server.once('error', fail);
      (this.server.listen as (...a: unknown[]) => void)(...args, () => {
        this.server.off('error', fail);
        ok();
      });
    });
  }

  address() {
    return this.server.address();
  }

  close(): Promise<void> {
    for (const w of this.watches) this.endWatch(w);
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** Down for `downMs` (connections refused), then up again with a fresh watch cache: watches
   * from before answer 410, as an API server restarted behind a load balancer can. */
  async restart(downMs: number): Promise<void> {
    await this.close();
    await new Promise((r) => setTimeout(r, downMs));
    this.oldest = this.rv + 1;
    await this.listen(...(this.listenArgs ?? []));
  }

  resourceVersion(): number {
    return this.rv;
  }

  get(resource: Resource, namespace: string | undefined, name: string): Obj | undefined {
    return this.objects.get(resource)!.get(`${namespace ?? ''}/${name}`);
  }

  list(resource: Resource): Obj[] {
    return [...this.objects.get(resource)!.values()];
  }

  /** Create or replace an object (resourceVersion, uid and creationTimestamp as the server sets them). */
  put(resource: Resource, obj: Obj): Obj {
    const store = this.objects.get(resource)!;
    const key = keyOf(obj);
    const old = store.get(key);
    const rv = ++this.rv;
    const stored = {
      ...KINDS[resource],
      ...obj,
      metadata: { ...obj.metadata, uid: old?.metadata?.uid ?? obj.metadata?.uid ?? randomUUID(), creationTimestamp: old?.metadata?.creationTimestamp ?? obj.metadata?.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'), resourceVersion: String(rv) },
    };
    store.set(key, stored);
    this.record(resource, old ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  /** Put many objects, one version step each (the benchmark preloads 20k this way). */
  putMany(resource: Resource, objs: Obj[]): void {
    for (const o of objs) this.put(resource, o);
  }

  delete(resource: Resource, namespace: string | undefined, name: string): boolean {
    const store = this.objects.get(resource)!;
    const key = `${namespace ?? ''}/${name}`;
    const old = store.get(key);
    if (!old) return false;
    store.delete(key);
    const rv = ++this.rv;
    this.record(resource, 'DELETED', { ...old, metadata: { ...old.metadata, resourceVersion: String(rv) } });
    return true;
  }

  /** Forget history: watches from any version before now answer 410 Gone. */
  compact(): void {
    this.oldest = this.rv + 1;
    this.history.length = 0;
  }

  /** A BOOKMARK to every watch that allows them (the real server sends one about every minute). */
  bookmark(): void {
    for (const w of this.watches) if (w.bookmarks) this.send(w, { type: 'BOOKMARK', object: { ...KINDS[w.resource], metadata: { resourceVersion: String(this.rv) } } });
  }

  /** End every watch as its timeoutSeconds would (a clean end of the stream). */
  endWatches(): void {
    for (const w of this.watches) this.endWatch(w);
  }

  /** Break every watch's connection (TCP reset from the client's side of view). */
  resetWatches(): void {
    for (const w of [...this.watches]) {
      this.watches.delete(w);
      clearTimeout(w.timer);
      w.res.socket?.destroy();
    }
  }

  /** The next requests (of a kind, if `only`) meet these faults, one each, in order. */
  inject(...faults: Fault[]): void {
    this.faults.push(...faults);
  }

  watchCount(resource?: Resource): number {
    return [...this.watches].filter((w) => !resource || w.resource === resource).length;
  }

  private record(resource: Resource, type: EventType, obj: Obj): void {
    this.history.push({ rv: Number(obj.metadata.resourceVersion), resource, type, obj });
    if (this.history.length > this.historyLimit) {
      const drop = this.history.length - this.historyLimit;
      this.oldest = this.history[drop].rv;
      this.history.splice(0, drop);
    }
    for (const w of this.watches) if (w.resource === resource && w.match(obj)) this.send(w, { type, object: obj });
  }

  private send(w: Watch, ev: Obj): void {
    w.res.write(JSON.stringify(ev) + '\n');
  }

  private endWatch(w: Watch): void {
    this.watches.delete(w);
    clearTimeout(w.timer);
    w.res.end();
  }

  private status(res: ServerResponse, code: number, reason: string, message: string, headers: Record<string, string> = {}): void {
    res.writeHead(code, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://fake');
    const resource = RESOURCE_PATHS[url.pathname];
    const q = url.searchParams;
    const isWatch = q.get('watch') === '1' || q.get('watch') === 'true';
    const fault = this.faults.findIndex((f) => (!f.only || f.only === (isWatch ? 'watch' : 'list')) && (!f.resource || f.resource === resource));
    if (fault >= 0 && resource) {
      const f = this.faults.splice(fault, 1)[0];
      this.stats.faults++;
      if (f.kind === 'reset') return void req.socket.destroy();
      if (f.kind === 'stall') return; // never answers: the client's header timeout must act
      const reasons: Record<number, string> = { 403: 'Forbidden', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' };
      return this.status(res, f.status, reasons[f.status] ?? 'Unknown', `injected ${f.status}`, f.retryAfter !== undefined ? { 'retry-after': String(f.retryAfter) } : {});
    }
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!auth || !this.tokens.has(auth[1])) {
      this.stats.unauthorized++;
      return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    if (req.method !== 'GET' || !resource) return this.status(res, 404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`);
    let labels: ReturnType<typeof labelMatcher>;
    let fields: ReturnType<typeof fieldMatcher>;
    try {
      labels = labelMatcher(q.get('labelSelector'));
      fields = fieldMatcher(q.get('fieldSelector'));
    } catch (e) {
      return this.status(res, 400, 'BadRequest', (e as Error).message);
    }
    const match = (o: Obj) => labels(o.metadata?.labels) && fields(o);
    if (isWatch) this.watch(resource, q, match, res);
    else this.listAnswer(resource, q, match, res);
  }

  private listAnswer(resource: Resource, q: URLSearchParams, match: (o: Obj) => boolean, res: ServerResponse): void {
    this.stats.lists[resource] = (this.stats.lists[resource] ?? 0) + 1;
    const all = [...this.objects.get(resource)!.values()].filter(match).sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    // resourceVersion=0 is answered from the watch cache, whole: the limit is ignored.
    const limit = q.get('resourceVersion') === '0' ? 0 : Number(q.get('limit')) || 0;
    let start = 0;
    let rv = this.rv;
    const cont = q.get('continue');
    if (cont) {
      const c = JSON.parse(Buffer.from(cont, 'base64').toString()) as { start: number; rv: number };
      if (c.rv + 1 < this.oldest) return this.status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      [start, rv] = [c.start, c.rv];
    }
    const items = limit ? all.slice(start, start + limit) : all.slice(start);
    const more = limit > 0 && start + limit < all.length;
    const { kind, apiVersion } = KINDS[resource];
    res.writeHead(200, { 'content-type': 'application/json' });
    // Items of a list carry no kind or apiVersion, as the real server serves them.
    const body = { kind: `${kind}List`, apiVersion, metadata: { resourceVersion: String(rv), ...(more ? { continue: Buffer.from(JSON.stringify({ start: start + limit, rv })).toString('base64'), remainingItemCount: all.length - start - limit } : {}) }, items: items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest) };
    res.end(JSON.stringify(body));
  }

  private watch(resource: Resource, q: URLSearchParams, match: (o: Obj) => boolean, res: ServerResponse): void {
    this.stats.watches[resource] = (this.stats.watches[resource] ?? 0) + 1;
    const from = q.get('resourceVersion');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const timeout = Number(q.get('timeoutSeconds')) || 1800;
    const w: Watch = { resource, match, res, bookmarks: q.get('allowWatchBookmarks') === 'true', timer: setTimeout(() => this.endWatch(w), timeout * 1000) };
    if (from && from !== '0' && Number(from) + 1 < this.oldest) {
      // The real server answers 200 and then one ERROR event with a 410 Status.
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.oldest})`, reason: 'Expired', code: 410 } }) + '\n');
      clearTimeout(w.timer);
      return;
    }
    if (!from || from === '0') {
      for (const o of this.objects.get(resource)!.values()) if (match(o)) this.send(w, { type: 'ADDED', object: o });
    } else {
      for (const h of this.history) if (h.rv > Number(from) && h.resource === resource && match(h.obj)) this.send(w, { type: h.type, object: h.obj });
    }
    this.watches.add(w);
    res.on('close', () => {
      this.watches.delete(w);
      clearTimeout(w.timer);
    });
  }
}
