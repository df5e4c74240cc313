// client-go's reflector, kept small: LIST, then WATCH from the list's resource version, forever.
// Whatever the API server does (ends the watch at its timeout, sends bookmarks, answers 410 Gone,
// resets, stalls, 429/5xx/403, a token rotating) the loop goes on: a relist when the version is
// too old, else a watch again after a jittered, growing back-off. The store compares what it holds
// with each list, so a relist that changes nothing calls no handler. A handler that throws is
// logged and counted; it never ends the loop.
import type { Logger } from 'pino';
import { KubeApiError, type KubeClient } from './client.js';
import { keyOf, type KubeObject, type WatchEvent } from './types.js';

export interface ReflectorHandlers<T> {
  /** an object added or changed (its previous version, if the store had one) */
  upsert(obj: T, old: T | undefined): void;
  remove(obj: T): void;
  /** after each complete list has been applied to the store (the first one: the initial sync) */
  listed?(): void;
}

export interface ReflectorMetrics {
  event(resource: string, type: string): void;
  relist(resource: string): void;
  watchError(resource: string, status: number): void;
  handlerError(resource: string): void;
}

export interface ReflectorOptions<T = unknown> {
  /** e.g. services, endpointslices, nodes (for logs and metrics) */
  resource: string;
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** back-off after a failure: from min, doubling to max, each wait jittered by up to +100% */
  backoffMs?: { min: number; max: number };
  /** the server-side watch timeout is drawn from [min, 2 x min) seconds (client-go: 300) */
  watchTimeoutS?: number;
  log: Logger;
  metrics?: ReflectorMetrics;
  /** what the store keeps of each object (the fields its handlers read) */
  transform?: (o: T) => T;
}


export class Reflector<T extends KubeObject> {
  readonly store = new Map<string, T>();
  private rv?: string;
  private stopped = false;
  private abort?: AbortController;
  private wake?: () => void;
  private loop?: Promise<void>;
  private syncedOnce = false;
  private resolveSynced!: () => void;
  /** resolves once the first list is in the store */
  readonly synced = new Promise<void>((r) => (this.resolveSynced = r));

  constructor(
    private readonly client: KubeClient,
    private readonly o: ReflectorOptions<T>,
    private readonly h: ReflectorHandlers<T>,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.loop;
  }

  /** Make the next round a list (a fresh start, as a 410 would). */
  relist(): void {
    this.rv = undefined;
    this.abort?.abort();
  }

  private async run(): Promise<void> {
    const { min, max } = this.o.backoffMs ?? { min: 800, max: 30_000 };
    let backoff = min;
    const { log, resource } = this.o;
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        if (this.rv === undefined) await this.list(this.abort.signal);
        const base = this.o.watchTimeoutS ?? 300;
        await this.client.watch<T>(
          this.o.path,
          { resourceVersion: this.rv!, labelSelector: this.o.labelSelector, fieldSelector: this.o.fieldSelector, timeoutSeconds: Math.floor(base * (1 + Math.random())), signal: this.abort.signal },
          (e) => this.onEvent(e),
        );
        backoff = min; // a watch that ran to its end: the server is fine
      } catch (e) {
        if (this.stopped) break;
        const err = e as KubeApiError;
        if (err instanceof KubeApiError && err.status === 410) {
          log.info({ resource }, 'resource version too old (410 Gone): listing again');
          this.rv = undefined;
          continue;
        }
        if (this.abort.signal.aborted) continue; // relist() asked for it
        const status = err instanceof KubeApiError ? err.status : 0;
        this.o.metrics?.watchError(resource, status);
        const wait = Math.max(backoff * (1 + Math.random()), (err instanceof KubeApiError && err.retryAfter ? err.retryAfter * 1000 : 0));
        log.warn({ resource, status, error: err.message, retryInMs: Math.round(wait) }, this.rv === undefined ? 'list failed; trying again' : 'watch failed; trying again');
        backoff = Math.min(max, backoff * 2);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, wait);
          this.wake = () => {
            clearTimeout(timer);
            r();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /**
   * One list into the store. A method of its own so that the parsed list is garbage once it returns:
   * a local of run() would stay in that async frame, suspended in the watch for minutes (20 MB of
   * raw objects at 10k services).
   */
  private async list(signal: AbortSignal): Promise<void> {
    const { log, resource } = this.o;
    const t0 = performance.now();
    // The first list as client-go makes it, from the API server's watch cache (resourceVersion
    // 0, one answer); a relist after 410 is a consistent, paged one.
    const list = await this.client.list<T>(this.o.path, {
      labelSelector: this.o.labelSelector,
      fieldSelector: this.o.fieldSelector,
      resourceVersion: this.syncedOnce ? undefined : '0',
      signal,
    });
    this.replace(list.items);
    this.rv = list.resourceVersion;
    if (this.syncedOnce) this.o.metrics?.relist(resource);
    log.info({ resource, items: list.items.length, resourceVersion: this.rv, ms: Math.round(performance.now() - t0) }, this.syncedOnce ? 'relisted' : 'listed');
    this.syncedOnce = true;
    this.resolveSynced();
  }

  private onEvent(e: WatchEvent<T>): void {
    const { resource } = this.o;
    this.o.metrics?.event(resource, e.type);
    if (e.type === 'ERROR') {
      const code = e.object?.code ?? 0;
      // The API server's way of saying 410 inside a watch: an ERROR event with a Status object.
      throw new KubeApiError(`watch ${resource}: ${code} ${e.object?.reason ?? ''} ${e.object?.message ?? ''}`.trim(), code, e.object?.reason);
    }
    const rv = e.object?.metadata?.resourceVersion;
    if (e.type === 'BOOKMARK') {
      if (rv) this.rv = rv;
      return;
    }
    const obj = this.o.transform ? this.o.transform(e.object) : e.object;
    const key = keyOf(obj);
    const old = this.store.get(key);
    if (e.type === 'DELETED') {
      this.store.delete(key);
      if (old) this.call(() => this.h.remove(old));
    } else {
      this.store.set(key, obj);
      this.call(() => this.h.upsert(obj, old));
    }
    if (rv) this.rv = rv;
  }

  /** A list replaces the store: only what differs (by resourceVersion) reaches the handlers. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const raw of items) {
      const key = keyOf(raw);
      seen.add(key);
      const old = this.store.get(key);
      if (old && old.metadata?.resourceVersion === raw.metadata?.resourceVersion && old.metadata?.resourceVersion !== undefined) continue;
      const it = this.o.transform ? this.o.transform(raw) : raw;
      this.store.set(key, it);
      this.call(() => this.h.upsert(it, old));
    }
    for (const [key, old] of this.store) {
      if (seen.has(key)) continue;
      this.store.delete(key);
      this.call(() => this.h.remove(old));
    }
    this.call(() => this.h.listed?.());
  }

  private call(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.o.metrics?.handlerError(this.o.resource);
      this.o.log.error({ resource: this.o.resource, error: (e as Error).message }, 'handler failed (the watch goes on)');
    }
  }
}
