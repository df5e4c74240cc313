// kpbpf run --kubernetes: kube-proxy's job. Services, EndpointSlices and this node's Node come from
// the API (list, then watch); nothing is programmed before the first lists are complete, then the
// whole desired state is reconciled against the pinned data plane (a restart changes nothing that
// did not change), and from then on each change is applied as it comes, coalesced per service. The
// config file (-f), if given, gives conf and interfaces; VIPs come from the API only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Worker } from 'node:worker_threads';
import { KpError, type KpErrorCode } from '../errors.js';
import { ensureBpffs, pinRoot } from '../loader/index.js';
import { lockWriter } from '../dataplane/lock.js';
import { settleMemory } from '../daemon/memory.js';
import { Control } from '../dataplane/control.js';
import { loadConfigSource, parseConfig } from '../config/validate.js';
import { formatOp, type VipRef } from '../config/diff.js';
import type { KpConfig, KpVipConfig } from '../config/types.js';
import { countVip, vipCounts, type ApplyResult, type VipCounts } from '../dataplane/apply.js';
import { createMetrics, type DaemonMetrics } from '../daemon/metrics.js';
import { HealthCheckServers } from '../daemon/healthchecks.js';
import { onDaemonSignals } from '../daemon/signals.js';
import { parseListen } from '../daemon/run.js';
import { KubeClient, type ClientTimeouts } from './client.js';
import type { KubeConnection } from './connection.js';
import { Reflector } from './reflector.js';
import { DesiredServices, type ServiceChange } from './desired.js';
import { createKubeMetrics, type KubeMetrics } from './metrics.js';
import { PROXY_LABEL_SELECTOR, TO_BE_DELETED_TAINT, ZONE_LABEL, trimNode, trimService, trimSlice, type EndpointSlice, type Node, type Service } from './types.js';
import { collectDrained } from '../daemon/collect.js';

export interface KubeRunOptions {
  connection: KubeConnection;
  nodeName: string;
  /** conf and interfaces (a config file without vips) */
  file?: string;
  bpffs?: string;
  /** ADDR:PORT of /metrics (kube-proxy: 127.0.0.1:10249); undefined: none */
  metrics?: string;
  /** ADDR:PORT of /healthz and /livez (kube-proxy: 0.0.0.0:10256); undefined: none */
  healthz?: string;
  healthCheckAddress?: string;
  /** attach the socket hooks to this cgroup v2 directory (the node's own sockets) */
  cgroup?: string;
  detachOnExit: boolean;
  /** unhealthy when a change has waited longer than this (kube-proxy: 2 x its 30 s sync period) */
  healthTimeoutMs?: number;
  clientTimeouts?: ClientTimeouts;
  /** the reflectors' back-off (tests shorten it) */
  backoffMs?: { min: number; max: number };
  log: Logger;
}

const COLLECT_MS = 5000;
const COLLECT_AFTER_SYNC_MS = 500;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/** Go's time.Time String(), as kube-proxy's health JSON prints it. */
export function goTime(d: Date | undefined): string {
  if (!d) return '0001-01-01 00:00:00 +0000 UTC';
  const iso = d.toISOString(); // 2026-12-07T21:10:05.123Z
  const frac = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${frac ? `.${frac}` : ''} +0000 UTC`;
}

/** The Node's addresses node ports are served on: its InternalIP and ExternalIP addresses. */
export function nodeAddressesOf(node: Node | undefined): string[] | undefined {
  const addrs = (node?.status?.addresses ?? []).filter((a) => (a.type === 'InternalIP' || a.type === 'ExternalIP') && typeof a.address === 'string').map((a) => a.address!);
  return addrs.length ? addrs : undefined;
}

/** kube-proxy's nodeEligible: not being deleted, not tainted for deletion by the autoscaler. */
export function nodeEligible(node: Node | undefined): boolean {
  if (!node) return true;
  if (node.metadata?.deletionTimestamp) return false;
  return !(node.spec?.taints ?? []).some((t) => t.key === TO_BE_DELETED_TAINT);
}

interface FileConf {
  conf: Record<string, unknown>;
  config: KpConfig;
  manageInterfaces: boolean;
}

/** The -f file: conf and interfaces, read and validated as `apply` reads them; vips are refused. */
export function readConfFile(file: string | undefined): FileConf {
  if (!file) return { conf: {}, config: parseConfig({}), manageInterfaces: false };
  const src = loadConfigSource(file);
  if (src.config.vips.length) {
    throw new KpError('KP_ERR_CONFIG', `${file}: /vips: with --kubernetes, VIPs come from the API's Services and EndpointSlices; the file gives conf and interfaces only`);
  }
  const raw = src.rawConf;
  return { conf: typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {}, config: src.config, manageInterfaces: src.manageInterfaces };
}

/** Resident, V8 heap used and external memory, MiB (the first sync logs it). */
function memoryMiB(): Record<string, number> {
  const m = process.memoryUsage();
  return Object.fromEntries(Object.entries({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }).map(([k, v]) => [k, Math.round(v / 2 ** 20)]));
}

/** The data plane made on a worker thread (loadworker.ts): `maps` resolves once the maps are pinned
 * (with the connection table's buckets), `program` once the program is loaded over them (its ms,
 * and what it carried over from an older kpbpf's pins). */
function loadOnWorker(bpffs: string | undefined, buckets: number): { maps: Promise<{ buckets: number; ms: number }>; program: Promise<ProgramLoaded> } {
  let mapsOk!: (m: { buckets: number; ms: number }) => void;
  let mapsFail!: (e: Error) => void;
  const maps = new Promise<{ buckets: number; ms: number }>((ok, fail) => ((mapsOk = ok), (mapsFail = fail)));
  const program = new Promise<ProgramLoaded>((ok, fail) => {
    const failBoth = (e: Error) => (mapsFail(e), fail(e));
    // None of the process's flags: a profiler's (--cpu-prof) signals would end the verifier's work with
    // EAGAIN, and heap flags are refused in a worker.
    const execArgv: string[] = [];
    let w: Worker;
    try {
      w = new Worker(new URL('./loadworker.js', import.meta.url), { workerData: { bpffs, buckets }, execArgv });
    } catch (e) {
      return failBoth(e as Error); // e.g. a flag a worker cannot take: both promises fail, none hangs
    }
    w.on('message', (m: { maps?: boolean; buckets?: number; ok?: boolean; ms?: number; migrated?: string[]; error?: string; code?: KpErrorCode; details?: string[]; log?: string }) => {
      if (m.maps) mapsOk({ buckets: m.buckets!, ms: m.ms ?? 0 });
      else if (m.ok) ok({ ms: m.ms ?? 0, migrated: m.migrated });
      else failBoth(new KpError(m.code ?? 'KP_ERR_BPF', m.error ?? 'the program load failed', { details: m.details, log: m.log }));
    });
    w.once('error', failBoth);
    w.once('exit', (code) => failBoth(new KpError('KP_ERR_BPF', `the program load's thread exited (${code}) before it was done`)));
  });
  maps.catch(() => {});
  program.catch(() => {});
  return { maps, program };
}

interface ProgramLoaded {
  ms: number;
  migrated?: string[];
}

const refOf = (v: KpVipConfig): VipRef => ({ prefix: v.prefix, protocol: v.protocol, port: v.port });

export class KubeDaemon {
  private control!: Control;
  private metrics!: DaemonMetrics;
  private kmetrics!: KubeMetrics;
  private client!: KubeClient;
  private readonly desired: DesiredServices;
  private file!: FileConf;
  private reflectors: Reflector<Service | EndpointSlice | Node>[] = [];
  private node?: Node;
  private appliedNodeAddrs?: string;
  private servers: Server[] = [];
  private healthChecks!: HealthCheckServers;
  private synced = false;
  private applying = false;
  private again = false;
  private immediate?: NodeJS.Immediate;
  private retryTimer?: NodeJS.Timeout;
  private retryMs = RETRY_MIN_MS;
  /** what the committed VIPs take of the fixed-size maps (kept across syncs: 20k VIPs are not counted per change) */
  private counts: VipCounts = vipCounts([]);
  private collector?: NodeJS.Timeout;
  private collectSoon?: NodeJS.Timeout;
  /** when the oldest change not in the maps yet came (performance.now()); undefined: none */
  private pendingSince?: number;
  private pendingWall?: number;
  private lastUpdated?: Date;
  private stop!: () => void;
  /** the program's load on the worker (the first sync ends when it is in) */
  private program?: Promise<ProgramLoaded>;
  private programReady = false;
  /** a full sync failed before the program was in: tried again once it is */
  private retryAfterLoad?: string;

  constructor(private readonly o: KubeRunOptions) {
    this.desired = new DesiredServices(o.nodeName);
  }

  async run(): Promise<void> {
    const log = this.o.log;
    let stopping = false;
    const stopped = new Promise<void>((r) => (this.stop = () => ((stopping = true), r())));
    this.file = readConfFile(this.o.file);
    // Until the first sync, the pinned data plane keeps forwarding what it was given before.
    this.markPending();
    this.metrics = createMetrics(() => this.control);
    this.kmetrics = createKubeMetrics(this.metrics.registry);
    const offSignals = onDaemonSignals(log, () => this.reloadFile(), () => this.stop());
    try {
      if (this.o.healthz) await this.listen(this.o.healthz, 'healthz');
      if (this.o.metrics) await this.listen(this.o.metrics, 'metrics');
      // The lists go out and the program loads on a worker thread at the same time (the verifier
      // holds the thread that loads for about a second); handlers only record until the first sync.
      // (Translating and building the Maglev tables during the load were tried on the helper
      // thread too: on two cores that slowed the verifier more than it saved.)
      const pinDir = pinRoot({ bpffs: this.o.bpffs });
      ensureBpffs(pinDir.slice(0, pinDir.lastIndexOf('/')) || '/');
      const lock = lockWriter(pinDir, undefined, `kpbpf run --kubernetes (node ${this.o.nodeName})`);
      const tLoad = performance.now();
      let first: ReturnType<DesiredServices['take']>;
      try {
        const load = loadOnWorker(this.o.bpffs, this.file.config.conf.buckets);
        this.program = load.program;
        load.program.then(({ ms, migrated }) => log.info({ ms: Math.round(ms), ...(migrated?.length ? { migrated } : {}) }, migrated?.length ? "program loaded (pinned): took over an older kpbpf's data plane, connections kept" : 'program loaded (pinned)'), () => {});
        this.client = new KubeClient(this.o.connection, this.o.clientTimeouts);
        this.startReflectors();
        // Once the lists are complete, their translation too, while the maps are made.
        const translated = Promise.all(this.reflectors.map((r) => r.synced)).then(() => this.translateAll());
        await Promise.race([Promise.all([load.maps, translated]), stopped]);
        if (stopping) return lock.release();
        first = await translated;
        // Another table size than the pinned one is a resize, which loads a program of its own:
        // not while this one loads.
        if ((await load.maps).buckets !== this.file.config.conf.buckets) await Promise.race([load.program, stopped]);
        if (stopping) return lock.release();
        this.control = Control.open({ bpffs: this.o.bpffs, load: false, reload: false, lock, programPending: true });
        this.control.warn = (m) => log.warn(m);
      } catch (e) {
        lock.release();
        throw e;
      }
      // ms: since the process started (performance's origin), and since the load began on the worker.
      log.info({ pinDir: this.control.pinDir, node: this.o.nodeName, api: this.o.connection.server, auth: this.o.connection.source, ms: { process: Math.round(performance.now()), sinceLoad: Math.round(performance.now() - tLoad) } }, 'maps ready; the first sync fills them while the program loads');
      this.healthChecks = new HealthCheckServers(() => this.control, { address: this.o.healthCheckAddress, log, proxyHealthy: () => this.health().healthy, gate: true });
      this.synced = true;
      await this.fullSync('initial sync', first);
      first = undefined as never; // the first translation is garbage now
      settleMemory();
      if (this.o.cgroup) {
        const cg = this.control.attachCgroup(this.o.cgroup);
        log.info({ cgroup: cg.path, hooks: cg.hooks }, cg.already ? "the node's sockets are served (socket hooks already attached)" : "the node's sockets are served (socket hooks attached)");
      }
      this.collector = setInterval(() => this.collect(), COLLECT_MS);
      await stopped;
    } finally {
      offSignals();
      clearImmediate(this.immediate);
      clearTimeout(this.retryTimer);
      clearInterval(this.collector);
      clearTimeout(this.collectSoon);
      await Promise.all(this.reflectors.map((r) => r.stop()));
      this.client?.close();
      await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await this.healthChecks?.close();
      if (this.control) {
        if (this.o.detachOnExit) {
          log.info({ interfaces: this.control.detach(), cgroups: this.control.detachCgroups() }, 'detached (--detach-on-exit); the maps stay pinned');
        } else {
          log.info('the data plane keeps forwarding (pinned); run kpbpf detach to stop it');
        }
        this.control.close();
      }
    }
  }

  private startReflectors(): void {
    const common = { log: this.o.log, metrics: this.kmetrics, backoffMs: this.o.backoffMs };
    const changed = () => this.schedule();
    const services = new Reflector<Service>(this.client, { ...common, resource: 'services', path: '/api/v1/services', labelSelector: PROXY_LABEL_SELECTOR, transform: trimService }, {
      upsert: (s) => (this.desired.setService(s), changed()),
      remove: (s) => (this.desired.setService(s, true), changed()),
    });
    const slices = new Reflector<EndpointSlice>(this.client, { ...common, resource: 'endpointslices', path: '/apis/discovery.k8s.io/v1/endpointslices', labelSelector: PROXY_LABEL_SELECTOR, transform: trimSlice }, {
      upsert: (s) => (this.desired.setSlice(s), changed()),
      remove: (s) => (this.desired.setSlice(s, true), changed()),
    });
    const nodes = new Reflector<Node>(this.client, { ...common, resource: 'nodes', path: '/api/v1/nodes', fieldSelector: `metadata.name=${this.o.nodeName}`, transform: trimNode }, {
      upsert: (n) => this.setNode(n),
      remove: () => this.setNode(undefined),
    });
    this.reflectors = [services, slices, nodes] as Reflector<Service | EndpointSlice | Node>[];
    for (const r of this.reflectors) r.start();
  }

  private setNode(n: Node | undefined): void {
    this.node = n;
    const zone = n?.metadata?.labels?.[ZONE_LABEL];
    this.desired.setNode({ name: this.o.nodeName, ...(zone ? { zone } : {}) });
    this.schedule();
  }

  private markPending(): void {
    if (this.pendingSince !== undefined) return;
    this.pendingSince = performance.now();
    this.pendingWall = Date.now();
  }

  /** Changes are applied at the next turn of the loop: a burst of events (a rolling update, a
   * relist) is one sync, and no timer stands between an event and the maps. */
  private schedule(): void {
    this.markPending();
    this.kmetrics.pending.set(this.desired.dirty.size);
    if (!this.synced || this.immediate) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      this.sync();
    });
  }

  /**
   * The whole desired config for an apply. Its VIPs (20k at 10k dual-port services) are flattened
   * only if the apply reads them (deleting whole VIPs, or a plan large enough to prefetch tables):
   * a one-service change reads only `onlyDesired`. Not enumerable, so that apply's spread of the
   * config does not flatten them either.
   */
  private desiredConfig(vips: () => KpVipConfig[]): KpConfig {
    const config = { conf: this.file.config.conf, interfaces: this.file.config.interfaces } as KpConfig;
    let flat: KpVipConfig[] | undefined;
    Object.defineProperty(config, 'vips', { enumerable: false, get: () => (flat ??= vips()) });
    return config;
  }

  /** The Node's addresses into the data plane, if they changed (before VIPs: node ports use them). */
  private applyNodeAddresses(): void {
    const addrs = nodeAddressesOf(this.node);
    const key = addrs?.join() ?? '';
    if (key === this.appliedNodeAddrs) return;
    this.control.useNodeObjectAddresses(addrs);
    this.appliedNodeAddrs = key;
    this.o.log.info({ nodeAddresses: addrs ?? 'every address of the host' }, 'node port addresses');
  }

  /** Every service translated: the first sync's, made while the program loads. */
  private translateAll(): ReturnType<DesiredServices['take']> {
    this.desired.markAll();
    return this.desired.take(this.file.conf);
  }

  /**
   * Everything, compared with everything the maps hold: the first sync, and a new conf. The first
   * fills the maps while the program loads on the worker, then waits for it (changes that come
   * meanwhile wait too), takes it and attaches the file's interfaces: "synced" is then programmed.
   */
  private async fullSync(why: string, translated?: ReturnType<DesiredServices['take']>): Promise<void> {
    const t0 = performance.now();
    const since = this.pendingSince ?? t0;
    const log = this.o.log;
    this.applying = true;
    let synced: Record<string, unknown> | undefined;
    let plan: ApplyResult['plan'] = [];
    try {
      try {
        this.applyNodeAddresses();
        let taken = translated;
        if (!taken || this.desired.dirty.size) {
          // (events after the first translation: everything again, as any full sync does)
          if (taken) this.desired.retry(taken.changes);
          taken = this.translateAll();
        }
        this.report(taken);
        const vips = this.desired.vipsWith(taken.changes);
        const t1 = performance.now();
        const r = this.control.apply(this.desiredConfig(() => vips), { dryRun: false, manageInterfaces: this.file.manageInterfaces && this.programReady, collectDrained: false, flushUdp: true });
        this.desired.commit(taken.changes);
        this.counts = vipCounts(vips);
        plan = r.plan;
        synced = { why, services: this.desired.serviceCount(), vips: vips.length, changes: r.plan.length, ops: r.plan.slice(0, 20).map(formatOp), ms: { translate: Math.round(t1 - t0), apply: Math.round(performance.now() - t1) } };
      } catch (e) {
        this.failed(e as KpError, why);
      }
      // The program's failure is the daemon's: it goes to run().
      if (!this.programReady && this.program) await this.takeProgram(synced !== undefined);
    } finally {
      this.applying = false;
    }
    if (synced) {
      this.done(since);
      log.info({ ...synced, ms: { ...(synced.ms as object), total: Math.round(performance.now() - t0) }, memory: memoryMiB() }, plan.length ? 'synced' : 'synced: no changes');
      void this.healthChecks.sync(this.desired.vips());
      this.collectAfter(plan);
    }
    if (this.again) {
      this.again = false;
      this.schedule();
    }
  }

  /** The program the worker loaded, in place of none; the file's interfaces attached to it. */
  private async takeProgram(applied: boolean): Promise<void> {
    const t0 = performance.now();
    await this.program;
    this.control.adoptProgram();
    this.programReady = true;
    this.o.log.debug({ waitedMs: Math.round(performance.now() - t0) }, 'program taken');
    if (applied && this.file.manageInterfaces) {
      this.control.apply(this.desiredConfig(() => this.desired.vipsWith([])), { dryRun: false, manageInterfaces: true, onlyVips: [], onlyDesired: [], counts: this.counts, collectDrained: false });
    }
    if (this.retryAfterLoad) {
      const why = this.retryAfterLoad;
      this.retryAfterLoad = undefined;
      this.retryTimer = setTimeout(() => void this.fullSync(why), this.retryMs);
    }
  }

  /** The dirty services only: their VIPs read back and compared, the others untouched. */
  private sync(): void {
    if (this.applying) {
      this.again = true;
      return;
    }
    const since = this.pendingSince ?? performance.now();
    this.applying = true;
    let changes: ServiceChange[] = [];
    try {
      this.applyNodeAddresses();
      const taken = this.desired.take(this.file.conf);
      this.report(taken);
      changes = taken.changes;
      if (changes.length) {
        const t0 = performance.now();
        const only: VipRef[] = [];
        const onlyDesired: KpVipConfig[] = [];
        for (const c of changes) {
          for (const v of c.before) only.push(refOf(v));
          for (const v of c.after) {
            only.push(refOf(v));
            onlyDesired.push(v);
          }
        }
        // What the whole config takes of the fixed-size maps, from the last counts and this change.
        let counts = this.counts;
        for (const c of changes) {
          for (const v of c.before) counts = countVip(counts, v, -1);
          for (const v of c.after) counts = countVip(counts, v, 1);
        }
        const r = this.control.apply(this.desiredConfig(() => this.desired.vipsWith(changes)), { dryRun: false, manageInterfaces: false, onlyVips: only, onlyDesired, collectDrained: false, flushUdp: true, counts });
        this.desired.commit(changes);
        this.counts = counts;
        this.o.log.info({ services: changes.map((c) => c.key).slice(0, 20), changes: r.plan.length, ops: r.plan.slice(0, 20).map(formatOp), ms: { queued: Math.round((t0 - since) * 100) / 100, apply: Math.round((performance.now() - t0) * 100) / 100 } }, 'applied');
        if (changes.some((c) => [...c.before, ...c.after].some((v) => v.health_check_node_port))) void this.healthChecks.sync(this.desired.vips());
        this.collectAfter(r.plan);
      }
      this.done(since);
    } catch (e) {
      this.desired.retry(changes);
      this.failed(e as KpError, 'sync');
    } finally {
      this.applying = false;
    }
    if (this.again) {
      this.again = false;
      this.schedule();
    }
  }

  private report(taken: ReturnType<DesiredServices['take']>): void {
    for (const n of taken.notes) this.o.log.info({ service: n.key, notes: n.notes }, 'service: not everything is served');
    for (const i of taken.invalid) this.o.log.error({ service: i.key, details: i.details.slice(0, 20) }, 'service refused: the data plane keeps what it had for it');
    this.kmetrics.invalidServices.set(this.desired.invalid.size);
  }

  private done(since: number): void {
    this.kmetrics.syncSeconds.observe((performance.now() - since) / 1000);
    this.kmetrics.syncs.inc();
    this.kmetrics.pending.set(this.desired.dirty.size);
    this.metrics.lastSync.set(Date.now() / 1000);
    this.lastUpdated = new Date();
    this.retryMs = RETRY_MIN_MS;
    if (!this.desired.dirty.size) {
      this.pendingSince = undefined;
      this.pendingWall = undefined;
    }
  }

  private failed(e: KpError, why: string): void {
    this.kmetrics.syncFailures.inc();
    this.o.log.error({ why, error: e.message, details: e.details?.slice(0, 20), retryInMs: this.retryMs }, 'sync failed; the running state is unchanged; trying again');
    clearTimeout(this.retryTimer);
    // (a full sync before the program is in: once it is, with the interfaces)
    if (why !== 'sync' && !this.programReady) this.retryAfterLoad = why;
    else this.retryTimer = setTimeout(() => (why === 'sync' ? this.sync() : void this.fullSync(why)), this.retryMs);
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }

  private collectAfter(plan: { op: string }[]): void {
    if (this.collectSoon || !plan.some((o) => o.op === 'delBackend' || o.op === 'delVip')) return;
    this.collectSoon = setTimeout(() => {
      this.collectSoon = undefined;
      this.collect();
    }, COLLECT_AFTER_SYNC_MS);
  }

  private collect(): void {
    if (!this.applying) collectDrained(this.control, this.o.log);
  }

  /** SIGHUP: the file's conf and interfaces again; a change is applied as a full sync. */
  private reloadFile(): void {
    try {
      const next = readConfFile(this.o.file);
      if (JSON.stringify(next.config.conf) === JSON.stringify(this.file.config.conf) && JSON.stringify(next.config.interfaces) === JSON.stringify(this.file.config.interfaces)) {
        this.o.log.info('SIGHUP: the file is unchanged');
        return;
      }
      this.file = next;
      if (this.synced) void this.fullSync('SIGHUP: new conf');
    } catch (e) {
      this.o.log.error({ error: (e as Error).message, details: (e as KpError).details?.slice(0, 20) }, 'SIGHUP: file refused; the running state is unchanged');
    }
  }

  /** kube-proxy's proxier health: unhealthy while a change has waited longer than the limit. */
  health(): { healthy: boolean; nodeEligible: boolean; lastUpdated?: Date } {
    const waited = this.pendingWall === undefined ? 0 : Date.now() - this.pendingWall;
    return { healthy: waited < (this.o.healthTimeoutMs ?? 60_000), nodeEligible: nodeEligible(this.node), lastUpdated: this.lastUpdated };
  }

  private answer(req: IncomingMessage, res: ServerResponse, what: 'healthz' | 'metrics'): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' || path === '/livez') {
      const h = this.health();
      const ok = path === '/livez' ? h.healthy : h.healthy && h.nodeEligible;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff' });
      const body: Record<string, unknown> = { lastUpdated: goTime(h.lastUpdated), currentTime: goTime(new Date()) };
      if (path === '/healthz') body.nodeEligible = h.nodeEligible;
      res.end(JSON.stringify(body));
      return;
    }
    if (path === '/metrics' && what === 'metrics') {
      this.metrics.text().then(
        (text) => {
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          res.end(text);
        },
        (e: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${e.message}\n`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(what === 'metrics' ? 'not found: /metrics, /healthz, /livez\n' : 'not found: /healthz, /livez\n');
  }

  private async listen(text: string, what: 'healthz' | 'metrics'): Promise<void> {
    const { host, port } = parseListen(text, `--${what}`);
    const server = createServer((req, res) => this.answer(req, res, what));
    await new Promise<void>((ok, fail) => {
      server.once('error', (e) => fail(new KpError('KP_ERR_NET', `--${what} ${text}: ${(e as Error).message}`)));
      server.listen(port, host, () => ok());
    });
    this.servers.push(server);
    this.o.log.info({ [what]: text }, what === 'metrics' ? 'serving /metrics' : 'serving /healthz and /livez');
  }
}
