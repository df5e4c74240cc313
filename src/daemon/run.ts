// kpbpf run -f FILE: the long-running mode. Loads or adopts the pinned data plane, applies the file,
// then keeps running: the file is applied again when it changes and on SIGHUP, only its difference
// to the running state (`apply`'s reconciler, against the state this process keeps in memory). An
// invalid or failing file changes nothing; the next valid one applies. SIGTERM leaves the data plane
// forwarding (it is pinned) unless --detach-on-exit.
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { createServer, type Server } from 'node:http';
import { HealthCheckServers } from './healthchecks.js';
import { onDaemonSignals } from './signals.js';
import type { Logger } from 'pino';
import { KpError } from '../errors.js';
import { Control } from '../dataplane/control.js';
import { decodeConfigText, parseConfigText, prepareReloadValidators, type ConfigSource } from '../config/validate.js';
import { changedRegion, crossIndex, reparseOneVip, type CrossIndex } from '../config/reparse.js';
import { startConfigPreload, takeConfigPreload } from '../maglev/parallel.js';
import { KP_BUCKETS_MAX, KP_BUCKETS_MIN } from '../config/types.js';
import { FileBuffers } from './filebuf.js';
import { createMetrics, type DaemonMetrics } from './metrics.js';
import { changedVips, replacedVip, type Applied } from './incremental.js';
import { formatOp, type VipRef } from '../config/diff.js';
import { countVip, vipCounts, type VipCounts } from '../dataplane/apply.js';
import { collectDrained } from './collect.js';
import { settleMemory } from './memory.js';
import { injectAt } from '../inject.js';

/**
 * A change is applied at once; a file that is not valid JSON is read again after this window before
 * it is reported, since an editor that writes in place may be half way through.
 */
const SETTLE_MS = 50;
/** How often drained backends that no connection uses any more are freed (a walk of kp_ct). */
const COLLECT_MS = 5000;
/** After an apply that removed backends, the walk is made this much later: a rolling update's
 * changes come in a burst, and each should reach the maps without waiting for a walk. */
const COLLECT_AFTER_APPLY_MS = 500;

export interface RunOptions {
  file: string;
  bpffs?: string;
  /** ADDR:PORT of /metrics and /healthz; undefined: no HTTP server */
  metrics?: string;
  detachOnExit: boolean;
  /** where health-check node ports listen (kube-proxy: the node's addresses) */
  healthCheckAddress?: string;
  log: Logger;
}


export interface HealthView {
  healthy: boolean;
  attached: string[];
  cgroups: number;
  lastApplied?: string;
  lastSync?: string;
  lastError?: string;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** conf.buckets as the file's text gives it, if it is a size the table can have; no parse. */
function bucketsHint(file: string): number | undefined {
  let head: string;
  try {
    head = readFileSync(file).toString('latin1', 0, 1 << 16); // conf is near the start of a generated file
  } catch {
    return undefined;
  }
  const b = Number(/"buckets"\s*:\s*(\d{1,9})\b/.exec(head)?.[1]);
  return Number.isInteger(b) && b >= KP_BUCKETS_MIN && b <= KP_BUCKETS_MAX && (b & (b - 1)) === 0 ? b : undefined;
}

export function parseListen(text: string, flag = '--metrics'): { host: string; port: number } {
  const m = /^(?:(\[[0-9a-fA-F:]+\]|[^:]+):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535) throw new KpError('KP_ERR_ARG', `${flag}: expected [ADDR:]PORT (e.g. 127.0.0.1:10249), got '${text}'`);
  return { host: (m[1] ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port };
}

export class Daemon {
  private control!: Control;
  private metrics!: DaemonMetrics;
  private server?: Server;
  private watcher?: FSWatcher;
  /** the inode of the watched directory: a directory replaced or removed needs a new watch */
  private dirIno?: number;
  private timer?: NodeJS.Timeout;
  private immediate?: NodeJS.Immediate;
  /** the reason of the apply scheduled and not run yet, and when its first event came */
  private pendingWhy?: string;
  private pendingSince?: number;
  private applying = false;
  private again = false;
  private lastSync?: Date;
  private lastApplied?: string;
  private lastError?: string;
  private stopped!: Promise<void>;
  private healthChecks!: HealthCheckServers;
  /** the text of the last file applied, so that events that change nothing are skipped */
  /** the bytes of the file applied last: comparing them costs a memcmp, where equal-length strings
   * cost hashing 2 MB */
  private appliedBytes?: Buffer;
  private readonly files = new FileBuffers();
  /** what the maps hold as this daemon applied it; undefined: compare everything */
  private applied?: Applied;
  /** the source applied last and the index of what its VIPs hold, for a reload of one VIP */
  private source?: ConfigSource;
  private index?: CrossIndex;
  /** what the source's VIPs take of the fixed-size maps, kept across reloads of one VIP */
  private counts?: VipCounts;
  private collector?: NodeJS.Timeout;
  private collectSoon?: NodeJS.Timeout;
  /** the file as the helper thread read and checked it while the data plane opened, for the first
   * apply: how long this thread waited for it (ms) and how long the helper took (aside) */
  private first?: { bytes: Buffer; source: ConfigSource; ms: number; aside: number };
  private stop!: () => void;
  readonly file: string;

  constructor(private readonly o: RunOptions) {
    this.file = resolve(o.file);
  }

  /** Runs until SIGTERM or SIGINT. */
  async run(): Promise<void> {
    const log = this.o.log;
    this.stopped = new Promise((r) => (this.stop = r));
    // Signals first: a SIGHUP's default action would end the process in the middle of the program
    // load or the first apply. Their handlers run once this thread is free, after the first apply.
    const offSignals = onDaemonSignals(log, () => this.schedule('SIGHUP'), () => this.stop());
    try {
      await this.start();
    } catch (e) {
      offSignals();
      throw e;
    }
    if (this.o.metrics) await this.listen(this.o.metrics);
    try {
      await this.stopped;
    } finally {
      offSignals();
      await this.shutdown();
    }
  }

  private async start(): Promise<void> {
    const log = this.o.log;
    // The file is read, checked and its Maglev tables built on the helper thread while the program
    // loads (half a second of verifier); the first apply takes them from there.
    const preload = startConfigPreload(this.file);
    // A first load takes the file's table size, so that applying it does not reload at once (a
    // hint: if the file says otherwise, its apply resizes the table).
    const buckets = bucketsHint(this.file);
    // A restart or a new version takes over the pins: its program replaces the running one over the
    // same maps (connections kept), or the pins are refused if their layout differs.
    // The writer lock, held for the daemon's life: other writers are told who owns the data plane.
    this.control = Control.open({ bpffs: this.o.bpffs, load: true, buckets, reload: false, upgrade: true, owner: `kpbpf run -f ${this.file}` });
    this.control.warn = (m) => log.warn(m);
    log.info({ pinDir: this.control.pinDir, file: this.file, ...(this.control.dp.migrated?.length ? { migrated: this.control.dp.migrated } : {}) }, 'data plane ready');
    const t0 = performance.now();
    const got = preload && takeConfigPreload(preload);
    if (got) this.first = { source: got.source, bytes: Buffer.from(got.bytes.buffer, got.bytes.byteOffset, got.bytes.byteLength), ms: performance.now() - t0, aside: got.ms };
    this.metrics = createMetrics(() => this.control);
    this.healthChecks = new HealthCheckServers(() => this.control, { address: this.o.healthCheckAddress, log, proxyHealthy: () => this.health().healthy });
    this.applyFile('start');
    settleMemory();
    // The first reload's validators are compiled now, while nothing waits (the helper checked the
    // first file, so this thread has compiled none yet).
    setImmediate(() => prepareReloadValidators());
    // The directory, not the file: an editor's save replaces the file, and a ConfigMap volume swaps
    // its `..data` symlink, so any event there may be a new config; an unchanged text is skipped.
    this.watchDir();
    // A save between the first read and the watch is found now (an unchanged file is skipped).
    this.schedule('file changed');
    this.collector = setInterval(() => {
      this.checkDir();
      this.collect();
    }, COLLECT_MS);
  }

  private async shutdown(): Promise<void> {
    const log = this.o.log;
    this.watcher?.close();
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    clearInterval(this.collector);
    clearTimeout(this.collectSoon);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await this.healthChecks.close();
    if (this.o.detachOnExit) {
      const gone = this.control.detach();
      const cgroups = this.control.detachCgroups();
      log.info({ interfaces: gone, cgroups }, 'detached (--detach-on-exit); the maps stay pinned');
    } else {
      log.info('the data plane keeps forwarding (pinned); run kpbpf detach to stop it');
    }
    this.control.close();
  }

  /**
   * Watch the config's directory. An inotify watch follows the directory's inode: when the directory
   * is removed or replaced (a tool that swaps the whole directory), events stop, so the watch is made
   * again (on its own rename event, or at the next check) and the file applied.
   */
  private watchDir(): void {
    const dir = dirname(this.file);
    this.watcher?.close();
    this.watcher = undefined;
    try {
      this.dirIno = statSync(dir).ino;
      this.watcher = watch(dir, () => {
        this.checkDir();
        this.schedule('file changed');
      });
      this.watcher.on('error', (e) => this.o.log.error({ dir, error: e.message }, 'watching the config directory failed; checked again every 5 s'));
    } catch (e) {
      this.dirIno = undefined;
      this.o.log.error({ dir, error: (e as Error).message }, 'the config directory is gone; checked again every 5 s (SIGHUP applies the file at once)');
    }
  }

  private checkDir(): void {
    let ino: number | undefined;
    try {
      ino = statSync(dirname(this.file)).ino;
    } catch {
      ino = undefined;
    }
    if (ino === this.dirIno && this.watcher) return;
    if (ino !== undefined) {
      this.o.log.info({ dir: dirname(this.file) }, 'the config directory was replaced: watching the new one');
      this.watchDir();
      this.schedule('file changed');
    } else if (this.watcher) {
      this.watchDir(); // logs that it is gone
    }
  }

  /** The events of one save (a rename gives two or three) are applied once, at the next turn. */
  private schedule(why: string, delay = 0): void {
    // A SIGHUP applies the file even when its text is unchanged: merged with a file event, it stays.
    if (this.pendingWhy === 'SIGHUP') why = 'SIGHUP';
    if (this.pendingWhy === undefined) this.pendingSince = performance.now();
    this.pendingWhy = why;
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    // setTimeout(0) waits at least 1 ms; the next turn of the loop is enough to merge a save's events.
    if (delay) this.timer = setTimeout(() => this.applyFile(why), delay);
    else this.immediate = setImmediate(() => this.applyFile(why));
  }

  /** Free drained backends no connection uses; by the timer, and soon after an apply removed some. */
  private collect(): void {
    if (!this.applying) collectDrained(this.control, this.o.log);
  }

  /** Apply the file now; a change that arrives meanwhile is applied right after. */
  private applyFile(why: string): void {
    const queued = this.pendingSince === undefined ? 0 : performance.now() - this.pendingSince;
    this.pendingWhy = undefined;
    this.pendingSince = undefined;
    if (this.applying) {
      this.again = true;
      return;
    }
    this.applying = true;
    const log = this.o.log;
    const end = this.metrics.applySeconds.startTimer();
    try {
      const first = this.first;
      this.first = undefined;
      // The first apply's wait for the helper's read and check is counted here.
      const t0 = performance.now() - (first?.ms ?? 0);
      const name = this.file;
      const bytes = first?.bytes ?? this.files.read(this.file);
      const last = this.appliedBytes;
      const region = last && changedRegion(last, bytes);
      const same = region !== undefined && region.start === bytes.length && bytes.length === last!.length;
      // Another file of the directory changed, or the same text again: skipped, unless the last apply
      // failed (the file put back to the running text is then applied, and the error is over).
      if (why.startsWith('file changed') && same && this.lastError === undefined) return;
      // One VIP's text changed (the usual reload): that VIP alone is decoded, parsed and checked.
      const quick = this.applied && this.source && this.index && last ? reparseOneVip(this.source, this.index, last, bytes, region) : undefined;
      let src: ConfigSource;
      let change: { only?: VipRef[]; applied: Applied };
      if (quick) {
        src = quick.source;
        change = replacedVip(this.applied!, src, quick.index);
      } else {
        try {
          src = first?.source ?? parseConfigText(decodeConfigText(bytes, name), name, this.applied?.built);
        } catch (e) {
          // Half written? Read it again after the settle window before calling it invalid.
          if (why === 'file changed' && /invalid JSON/.test((e as Error).message)) {
            this.schedule('file changed (read again)', SETTLE_MS);
            return;
          }
          throw e;
        }
        change = changedVips(this.applied, src);
      }
      const t1 = performance.now();
      const { only, applied } = change;
      this.applied = undefined; // until this apply is done: a failed one may leave other VIPs changed
      this.source = undefined;
      const index = quick ? this.index! : crossIndex(src.config.vips);
      this.index = undefined;
      const counts = quick && this.counts ? countVip(countVip(this.counts, quick.before, -1), src.config.vips[quick.index], 1) : vipCounts(src.config.vips);
      this.counts = undefined;
      if (why === 'start') injectAt('run.first-apply');
      const r = this.control.apply(src.config, { dryRun: false, manageInterfaces: src.manageInterfaces, onlyVips: only, collectDrained: false, counts, ...(quick ? { onlyDesired: [src.config.vips[quick.index]] } : {}) });
      this.applied = applied;
      this.appliedBytes = bytes;
      this.files.keep();
      this.source = src;
      this.index = index;
      this.counts = counts;
      end();
      this.metrics.reloads.inc();
      this.lastSync = new Date();
      this.lastApplied = why;
      this.lastError = undefined;
      this.metrics.lastSync.set(this.lastSync.getTime() / 1000);
      const ms = { queued: round(queued), read: round(t1 - t0), ...(first ? { readAside: round(first.aside) } : {}), apply: round(performance.now() - t1) };
      log.info({ why, changes: r.plan.length, ops: r.plan.slice(0, 50).map(formatOp), vipsCompared: only?.length ?? 'all', parsed: quick ? 'one vip' : 'file', ms }, r.plan.length ? 'applied' : 'no changes');
      // A reload of one VIP changes health checks only if that VIP has or had one.
      if (!quick || quick.before.health_check_node_port || src.config.vips[quick.index].health_check_node_port) void this.healthChecks.sync(src.config.vips);
      // Housekeeping (a walk of kp_ct), once a burst of changes is over.
      if (!this.collectSoon && r.plan.some((o) => o.op === 'delBackend' || o.op === 'delVip')) {
        this.collectSoon = setTimeout(() => {
          this.collectSoon = undefined;
          this.collect();
        }, COLLECT_AFTER_APPLY_MS);
      }
    } catch (e) {
      end();
      this.metrics.reloadFailures.inc();
      const err = e as KpError;
      this.lastError = [err.message, ...(err.details ?? []).slice(0, 5)].join(' ');
      log.error({ why, error: err.message, details: err.details?.slice(0, 200) }, 'config refused; the running state is unchanged');
    } finally {
      this.applying = false;
    }
    if (this.again) {
      this.again = false;
      this.applyFile('changed while applying');
    }
  }

  health(): HealthView {
    const attached = this.control.links().map((l) => l.ifname);
    const cgroups = this.control.cgroups().length;
    return {
      // kube-proxy's healthz: serving, and the last sync done; here also: something is attached.
      healthy: this.lastSync !== undefined && this.lastError === undefined && (attached.length > 0 || cgroups > 0),
      attached,
      cgroups,
      ...(this.lastApplied ? { lastApplied: this.lastApplied } : {}),
      ...(this.lastSync ? { lastSync: this.lastSync.toISOString() } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  private async listen(text: string): Promise<void> {
    const { host, port } = parseListen(text);
    this.server = createServer((req, res) => {
      void (async () => {
        try {
          if (req.url === '/metrics') {
            const body = await this.metrics.text();
            res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
            res.end(body);
          } else if (req.url === '/healthz') {
            const h = this.health();
            res.writeHead(h.healthy ? 200 : 503, { 'content-type': 'application/json' });
            res.end(JSON.stringify(h) + '\n');
          } else {
            res.writeHead(404, { 'content-type': 'text/plain' });
            res.end('not found: /metrics, /healthz\n');
          }
        } catch (e) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`${(e as Error).message}\n`);
        }
      })();
    });
    await new Promise<void>((ok, fail) => {
      this.server!.once('error', (e) => fail(new KpError('KP_ERR_NET', `--metrics ${text}: ${(e as Error).message}`)));
      this.server!.listen(port, host, () => ok());
    });
    const addr = this.server.address();
    this.o.log.info({ metrics: typeof addr === 'object' && addr ? `${addr.address}:${addr.port}` : text }, 'serving /metrics and /healthz');
  }
}
