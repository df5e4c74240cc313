// A thin Kubernetes API client on Node's HTTP: LIST (paged) and WATCH (newline-delimited JSON
// events). Why not @kubernetes/client-node: 2.x needs Node 22, and 1.x's informer stops for good on
// most errors (its issues #447, #795, #1933); the retry policy lives in reflector.ts, not here.
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http';
import type { KubeConnection } from './connection.js';
import type { KubeList, WatchEvent } from './types.js';

/** A request the API server answered with an error status, or that failed on the way. */
export class KubeApiError extends Error {
  constructor(
    message: string,
    /** HTTP status, or 0 when there was no answer (reset, refused, timed out) */
    readonly status: number,
    readonly reason?: string,
    /** seconds, from Retry-After (429, 503) */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface ClientTimeouts {
  /** a request whose answer's headers have not come by then is abandoned (a stalled server) */
  headersMs: number;
  /** a watch that receives nothing this long past its timeoutSeconds is abandoned */
  watchSlackMs: number;
}

export const DEFAULT_TIMEOUTS: ClientTimeouts = { headersMs: 30_000, watchSlackMs: 30_000 };

export interface WatchOptions {
  resourceVersion: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** the server ends the watch after this long (client-go: 5 to 10 minutes, jittered) */
  timeoutSeconds: number;
  signal?: AbortSignal;
}

export class KubeClient {
  private readonly agent: HttpAgent;
  private readonly https: boolean;

  constructor(
    readonly conn: KubeConnection,
    readonly timeouts: ClientTimeouts = DEFAULT_TIMEOUTS,
  ) {
    this.https = conn.server.startsWith('https:');
    this.agent = this.https
      ? new HttpsAgent({ keepAlive: true, ca: conn.ca, cert: conn.cert, key: conn.key, rejectUnauthorized: !conn.insecureSkipTlsVerify })
      : new HttpAgent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  /** Start a GET; resolves with the response once its headers came with status 200. */
  private get(path: string, query: Record<string, string | number | boolean | undefined>, signal?: AbortSignal): Promise<{ res: IncomingMessage; req: ClientRequest }> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, String(v));
    const url = new URL(`${this.conn.server}${path}${qs.size ? `?${qs}` : ''}`);
    const token = this.conn.token?.();
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'kpbpf' };
    if (token) headers.authorization = `Bearer ${token}`;
    return new Promise((ok, fail) => {
      const req = (this.https ? httpsRequest : httpRequest)(url, { method: 'GET', headers, agent: this.agent, signal, ...(this.conn.socketPath ? { socketPath: this.conn.socketPath } : {}) });
      const stall = setTimeout(() => req.destroy(new KubeApiError(`GET ${path}: no answer in ${this.timeouts.headersMs} ms`, 0)), this.timeouts.headersMs);
      req.once('response', (res) => {
        clearTimeout(stall);
        if (res.statusCode === 200) return ok({ res, req });
        readAll(res).then(
          (body) => fail(apiError(path, res, body)),
          (e: Error) => fail(new KubeApiError(`GET ${path}: ${res.statusCode} and the body broke off: ${e.message}`, res.statusCode ?? 0)),
        );
      });
      req.once('error', (e) => {
        clearTimeout(stall);
        fail(e instanceof KubeApiError ? e : new KubeApiError(`GET ${path}: ${e.message}`, 0));
      });
      req.end();
    });
  }

  /** Every item of a collection, following `continue` (pages of `limit`). */
  async list<T>(
    path: string,
    o: {
      labelSelector?: string;
      fieldSelector?: string;
      limit?: number;
      /** '0': whatever the API server's watch cache holds, in one answer (client-go's first list) */
      resourceVersion?: string;
      signal?: AbortSignal;
    } = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const { res } = await this.get(path, { labelSelector: o.labelSelector, fieldSelector: o.fieldSelector, limit: o.limit ?? 5000, continue: cont, resourceVersion: cont ? undefined : o.resourceVersion }, o.signal);
      const body = JSON.parse((await readAll(res)).toString('utf8')) as KubeList<T>;
      for (const it of body.items ?? []) items.push(it);
      rv = body.metadata?.resourceVersion ?? rv;
      cont = body.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion: rv };
  }

  /**
   * Watch from a resource version: calls onEvent per event, in order, and resolves when the server
   * ends the stream (its timeoutSeconds), rejects on a broken or stalled stream.
   */
  async watch<T>(path: string, o: WatchOptions, onEvent: (e: WatchEvent<T>) => void): Promise<void> {
    const { res, req } = await this.get(
      path,
      { watch: 1, allowWatchBookmarks: true, resourceVersion: o.resourceVersion, labelSelector: o.labelSelector, fieldSelector: o.fieldSelector, timeoutSeconds: o.timeoutSeconds },
      o.signal,
    );
    await new Promise<void>((ok, fail) => {
      const idleMs = o.timeoutSeconds * 1000 + this.timeouts.watchSlackMs;
      let idle = setTimeout(stalled, idleMs);
      function stalled() {
        req.destroy(new KubeApiError(`watch ${path}: nothing received in ${idleMs} ms`, 0));
      }
      let buf = '';
      let failed = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        clearTimeout(idle);
        idle = setTimeout(stalled, idleMs);
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          let ev: WatchEvent<T>;
          try {
            ev = JSON.parse(line) as WatchEvent<T>;
          } catch {
            failed = true;
            req.destroy(new KubeApiError(`watch ${path}: a line is not JSON: ${line.slice(0, 80)}`, 0));
            return;
          }
          try {
            onEvent(ev);
          } catch (e) {
            // The caller ends the watch (an ERROR event): its error, not a broken stream's.
            clearTimeout(idle);
            failed = true;
            res.removeAllListeners('data');
            req.destroy();
            fail(e);
            return;
          }
        }
      });
      res.once('end', () => {
        clearTimeout(idle);
        if (!failed) ok();
      });
      const onErr = (e: Error) => {
        clearTimeout(idle);
        failed = true;
        fail(e instanceof KubeApiError ? e : new KubeApiError(`watch ${path}: ${e.message}`, 0));
      };
      res.once('error', onErr);
      req.once('error', onErr);
      res.once('aborted', () => onErr(new Error('the connection was reset')));
    });
  }
}

function readAll(res: IncomingMessage): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const parts: Buffer[] = [];
    res.on('data', (c: Buffer) => parts.push(c));
    res.once('end', () => ok(Buffer.concat(parts)));
    res.once('error', fail);
    res.once('aborted', () => fail(new Error('the connection was reset')));
  });
}

function apiError(path: string, res: IncomingMessage, body: Buffer): KubeApiError {
  let reason: string | undefined;
  let message = body.toString('utf8').slice(0, 200);
  try {
    const s = JSON.parse(body.toString('utf8')) as { reason?: string; message?: string };
    reason = s.reason;
    message = s.message ?? message;
  } catch {
    // not a Status object
  }
  const ra = Number(res.headers['retry-after']);
  return new KubeApiError(`GET ${path}: ${res.statusCode} ${reason ?? ''} ${message}`.replace(/\s+/g, ' ').trim(), res.statusCode ?? 0, reason, Number.isFinite(ra) ? ra : undefined);
}
