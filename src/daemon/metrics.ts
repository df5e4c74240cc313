// Prometheus metrics of the running data plane (prom-client): the maps' counters read at each
// scrape, and the daemon's own reload counters and apply latency.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Control } from '../dataplane/control.js';
import { hostPort } from '../maps/addr.js';

/** How long one read of the maps' counters (and the exposition made of it) serves scrapes. */
const STATS_MAX_AGE_MS = 500;

/** How often the connection table is counted at most (a walk of up to 2 x buckets entries). */
const CT_COUNT_MAX_AGE_MS = 30_000;

export interface DaemonMetrics {
  registry: Registry;
  /** The exposition text: the per-VIP and per-backend families, then the registry's metrics. */
  text(): Promise<string>;
  reloads: Counter;
  reloadFailures: Counter;
  applySeconds: Histogram;
  lastSync: Gauge;
}

/** Counters whose value is read from the maps at scrape time. */
function mapCounter(registry: Registry, name: string, help: string, labelNames: string[], read: (set: (labels: Record<string, string | number>, v: number) => void) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      read((labels, v) => this.inc(labels, v));
    },
  });
}

/** A label value in the exposition format (backslash, double quote and newline escaped). */
const esc = (v: string | number) => String(v).replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));

/**
 * The per-VIP and per-backend counter families, written straight in the exposition format: with
 * 10k VIPs and 80k backends that is 230k samples, which prom-client's labelled counters took 2 s to
 * build (blocking the loop that applies config changes).
 */
function vipFamilies(stats: ReturnType<Control['stats']>): string {
  const out: string[] = [];
  const family = (name: string, help: string, rows: () => void) => {
    out.push(`# HELP ${name} ${help}\n# TYPE ${name} counter\n`);
    rows();
  };
  const vipLabel = (v: { prefix: string; protocol: string; port: number }) => `vip="${esc(v.prefix)}",protocol="${v.protocol}",port="${v.port}"`;
  const kinds = { existingPkts: 'existing', firstPkts: 'first', untrackedPkts: 'untracked', noServerPkts: 'no_server' } as const;
  family('kpbpf_vip_packets_total', "Packets to a VIP by VPP's kind: existing (packet from existing sessions), first (first session packet), untracked, no_server", () => {
    for (const v of stats.vips) {
      const l = vipLabel(v);
      for (const [k, kind] of Object.entries(kinds)) out.push(`kpbpf_vip_packets_total{${l},kind="${kind}"} ${v.counters[k as keyof typeof kinds]}\n`);
    }
  });
  const perVip = (name: string, help: string, value: (c: (typeof stats.vips)[number]['counters']) => number) =>
    family(name, help, () => {
      for (const v of stats.vips) out.push(`${name}{${vipLabel(v)}} ${value(v.counters)}\n`);
    });
  perVip('kpbpf_vip_bytes_total', 'Bytes to a VIP', (c) => c.bytes);
  perVip('kpbpf_vip_reply_packets_total', 'Replies translated back to a VIP', (c) => c.replyPkts);
  perVip('kpbpf_vip_reply_bytes_total', 'Bytes of replies translated back to a VIP', (c) => c.replyBytes);
  const perBackend = (name: string, help: string, value: (b: (typeof stats.vips)[number]['backends'][number]) => number) =>
    family(name, help, () => {
      for (const v of stats.vips) {
        const l = vipLabel(v);
        for (const b of v.backends) out.push(`${name}{${l},backend="${esc(hostPort(b.address, b.port))}"} ${value(b)}\n`);
      }
    });
  perBackend('kpbpf_backend_packets_total', 'Packets sent to a backend', (b) => b.packets);
  perBackend('kpbpf_backend_bytes_total', 'Bytes sent to a backend', (b) => b.bytes);
  return out.join('');
}

export function createMetrics(control: () => Control): DaemonMetrics {
  const registry = new Registry();
  let stats: ReturnType<Control['stats']> | undefined;
  let statsAt = 0;
  // One read of the maps per scrape, shared by the metrics below.
  const current = () => {
    if (!stats || Date.now() - statsAt > STATS_MAX_AGE_MS) {
      stats = control().stats();
      statsAt = Date.now();
    }
    return stats;
  };
  mapCounter(registry, 'kpbpf_packets_total', "Packets by the decision that gave their verdict, and rewrites (kpbpf show stats' global counters)", ['reason'], (set) => {
    for (const [reason, v] of Object.entries(current().global)) set({ reason }, v);
  });
  let ct = { entries: 0, at: 0 };
  new Gauge({
    name: 'kpbpf_conntrack_entries',
    help: `Entries in kp_ct (two per connection), counted at most every ${CT_COUNT_MAX_AGE_MS / 1000} s`,
    registers: [registry],
    collect() {
      if (Date.now() - ct.at > CT_COUNT_MAX_AGE_MS) ct = { entries: control().dp.maps.ct.count(), at: Date.now() };
      this.set(ct.entries);
    },
  });
  new Gauge({
    name: 'kpbpf_conntrack_capacity',
    help: 'Entries kp_ct holds (2 x buckets); an LRU: when full, the least recently used are evicted',
    registers: [registry],
    collect() {
      this.set(control().dp.maps.ct.info.maxEntries);
    },
  });
  // Scrapes that come together share one exposition, and one made in the last STATS_MAX_AGE_MS
  // serves the next: at 10k VIPs and 80k backends it is some 20 MB of text, which each of several
  // scrapers (two Prometheus replicas, a curl) made again.
  let shared: { text: Promise<string>; at: number } | undefined;
  const text = (): Promise<string> => {
    if (!shared || Date.now() - shared.at > STATS_MAX_AGE_MS) {
      const made = { text: (async () => vipFamilies(current()) + (await registry.metrics()))(), at: Date.now() };
      made.text.catch(() => shared === made && (shared = undefined)); // a failure is not kept
      shared = made;
    }
    return shared.text;
  };
  return {
    registry,
    text,
    reloads: new Counter({ name: 'kpbpf_reloads_total', help: 'Config files applied (the first one, changes, SIGHUP)', registers: [registry] }),
    reloadFailures: new Counter({ name: 'kpbpf_reload_failures_total', help: 'Config files refused or failed (the running state stayed as it was)', registers: [registry] }),
    applySeconds: new Histogram({
      name: 'kpbpf_apply_duration_seconds',
      help: 'Time to validate, diff and apply a config file',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    lastSync: new Gauge({ name: 'kpbpf_last_sync_timestamp_seconds', help: 'When the last config was applied successfully (Unix time)', registers: [registry] }),
  };
}
