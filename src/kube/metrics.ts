// The Kubernetes source's metrics, in the daemon's registry: API events, relists, watch errors,
// pending changes, and the latency from an API event to the maps (kube-proxy's
// network_programming_duration is the nearest kube-proxy has).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ReflectorMetrics } from './reflector.js';

export interface KubeMetrics extends ReflectorMetrics {
  syncSeconds: Histogram;
  syncs: Counter;
  syncFailures: Counter;
  pending: Gauge;
  invalidServices: Gauge;
}

export function createKubeMetrics(registry: Registry): KubeMetrics {
  const events = new Counter({ name: 'kpbpf_kube_events_total', help: 'Watch events received from the API server', labelNames: ['resource', 'type'], registers: [registry] });
  const relists = new Counter({ name: 'kpbpf_kube_relists_total', help: 'Lists made again after the first (410 Gone, a restarted watch cache)', labelNames: ['resource'], registers: [registry] });
  const errors = new Counter({ name: 'kpbpf_kube_watch_errors_total', help: 'Lists and watches that failed (status 0: reset, refused or stalled), each retried', labelNames: ['resource', 'status'], registers: [registry] });
  const handler = new Counter({ name: 'kpbpf_kube_handler_errors_total', help: 'Watch events whose handling threw (the watch went on)', labelNames: ['resource'], registers: [registry] });
  return {
    event: (resource, type) => events.inc({ resource, type }),
    relist: (resource) => relists.inc({ resource }),
    watchError: (resource, status) => errors.inc({ resource, status: String(status) }),
    handlerError: (resource) => handler.inc({ resource }),
    syncSeconds: new Histogram({
      name: 'kpbpf_kube_sync_latency_seconds',
      help: 'From the first API event of a change to its VIPs and backends in the maps',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    syncs: new Counter({ name: 'kpbpf_kube_syncs_total', help: 'Syncs of changed services to the data plane', registers: [registry] }),
    syncFailures: new Counter({ name: 'kpbpf_kube_sync_failures_total', help: 'Syncs that failed (the running state stayed; retried)', registers: [registry] }),
    pending: new Gauge({ name: 'kpbpf_kube_pending_services', help: 'Services changed in the API and not in the maps yet', registers: [registry] }),
    invalidServices: new Gauge({ name: 'kpbpf_kube_invalid_services', help: 'Services whose VIPs the data plane cannot take (logged with the field; they keep what they had)', registers: [registry] }),
  };
}
