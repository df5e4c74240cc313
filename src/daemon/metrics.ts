// Prometheus metrics of the running data plane (prom-client): the maps' counters read at each
// scrape, and the daemon's own reload counters and apply latency.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Control } from '../dataplane/control.js';

/** How often the connection table is counted at most (a walk of up to 2 x buckets entries). */
const CT_COUNT_MAX_AGE_MS = 30_000;

export interface DaemonMetrics {
  registry: Registry;
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

export function createMetrics(control: () => Control): DaemonMetrics {
  const registry = new Registry();
  let stats: ReturnType<Control['stats']> | undefined;
  let statsAt = 0;
  // One read of the maps per scrape, shared by the metrics below.
  const current = () => {
    if (!stats || Date.now() - statsAt > 500) {
      stats = control().stats();
      statsAt = Date.now();
    }
    return stats;
  };
  const vipLabels = (v: { prefix: string; protocol: string; port: number }) => ({ vip: v.prefix, protocol: v.protocol, port: v.port });
  const kinds = { existingPkts: 'existing', firstPkts: 'first', untrackedPkts: 'untracked', noServerPkts: 'no_server' } as const;
  mapCounter(registry, 'kpbpf_vip_packets_total', "Packets to a VIP by VPP's kind: existing (packet from existing sessions), first (first session packet), untracked, no_server", ['vip', 'protocol', 'port', 'kind'], (set) => {
    for (const v of current().vips) for (const [k, kind] of Object.entries(kinds)) set({ ...vipLabels(v), kind }, v.counters[k as keyof typeof kinds]);
  });
  mapCounter(registry, 'kpbpf_vip_bytes_total', 'Bytes to a VIP', ['vip', 'protocol', 'port'], (set) => {
    for (const v of current().vips) set(vipLabels(v), v.counters.bytes);
  });
  mapCounter(registry, 'kpbpf_vip_reply_packets_total', 'Replies translated back to a VIP', ['vip', 'protocol', 'port'], (set) => {
    for (const v of current().vips) set(vipLabels(v), v.counters.replyPkts);
  });
  mapCounter(registry, 'kpbpf_vip_reply_bytes_total', 'Bytes of replies translated back to a VIP', ['vip', 'protocol', 'port'], (set) => {
    for (const v of current().vips) set(vipLabels(v), v.counters.replyBytes);
  });
  mapCounter(registry, 'kpbpf_backend_packets_total', 'Packets sent to a backend', ['vip', 'protocol', 'port', 'backend'], (set) => {
    for (const v of current().vips) for (const b of v.backends) set({ ...vipLabels(v), backend: `${b.address}:${b.port}` }, b.packets);
  });
  mapCounter(registry, 'kpbpf_backend_bytes_total', 'Bytes sent to a backend', ['vip', 'protocol', 'port', 'backend'], (set) => {
    for (const v of current().vips) for (const b of v.backends) set({ ...vipLabels(v), backend: `${b.address}:${b.port}` }, b.bytes);
  });
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
  return {
    registry,
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
