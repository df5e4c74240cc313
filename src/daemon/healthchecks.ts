// kube-proxy's health-check node ports, for VIPs with externalTrafficPolicy local: 200 with the
// count of local ready endpoints, 503 with none (or while the proxy itself is unhealthy), so that a
// cloud load balancer sends traffic only to nodes that have one. Headers and body as kube-proxy's
// pkg/proxy/healthcheck/service_health.go answers.
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Control } from '../dataplane/control.js';
import type { KpVipConfig } from '../config/types.js';

interface HealthCheck {
  port: number;
  vip: { prefix: string; protocol: 'tcp' | 'udp'; port: number };
  name: string;
  server: Server;
}

export class HealthCheckServers {
  private readonly checks = new Map<number, HealthCheck>();

  constructor(
    private readonly control: () => Control,
    /** gate: a node whose proxy is unhealthy answers 503 whatever its endpoints (kube-proxy's rule;
     * the file daemon only reports it in the body) */
    private readonly o: { address?: string; log: Logger; proxyHealthy: () => boolean; gate?: boolean },
  ) {}

  /** Listen on the health-check ports `vips` name, close the others. */
  async sync(vips: readonly KpVipConfig[]): Promise<void> {
    const want = new Map<number, KpVipConfig>();
    for (const v of vips) if (v.health_check_node_port) want.set(v.health_check_node_port, v);
    for (const [port, h] of this.checks) {
      const v = want.get(port);
      if (!v || v.prefix !== h.vip.prefix || v.protocol !== h.vip.protocol || v.port !== h.vip.port) {
        this.checks.delete(port);
        h.server.close();
        this.o.log.info({ healthCheckNodePort: port }, 'health check closed');
      }
    }
    for (const [port, v] of want) {
      const had = this.checks.get(port);
      if (had) {
        had.name = v.name ?? v.prefix;
        continue;
      }
      const h: HealthCheck = { port, vip: { prefix: v.prefix, protocol: v.protocol, port: v.port }, name: v.name ?? v.prefix, server: createServer((_req, res) => this.answer(h, res)) };
      this.checks.set(port, h);
      try {
        await new Promise<void>((ok, fail) => {
          h.server.once('error', fail);
          h.server.listen(port, this.o.address ?? '0.0.0.0', () => ok());
        });
        this.o.log.info({ healthCheckNodePort: port, vip: v.prefix }, 'health check listening');
      } catch (e) {
        this.checks.delete(port);
        this.o.log.error({ healthCheckNodePort: port, error: (e as Error).message }, 'health check cannot listen');
      }
    }
  }

  /** Ports listened on now. */
  ports(): number[] {
    return [...this.checks.keys()];
  }

  async close(): Promise<void> {
    await Promise.all([...this.checks.values()].map((h) => new Promise<void>((r) => h.server.close(() => r()))));
    this.checks.clear();
  }

  private answer(h: HealthCheck, res: ServerResponse): void {
    const v = this.control().vips.lookup(h.vip.prefix, h.vip.protocol, h.vip.port);
    // kube-proxy counts local ready endpoints: terminating ones do not make a node eligible.
    const local = v ? v.backends.filter((b) => b.state === 'active' && b.local && !b.terminating).length : 0;
    const healthy = this.o.proxyHealthy();
    const [namespace, name] = h.name.includes('/') ? h.name.split('/', 2) : ['', h.name];
    res.writeHead(local > 0 && (healthy || !this.o.gate) ? 200 : 503, {
      'content-type': 'application/json',
      'x-content-type-options': 'nosniff',
      'x-load-balancing-endpoint-weight': String(local),
    });
    res.end(JSON.stringify({ service: { namespace, name }, localEndpoints: local, serviceProxyHealthy: healthy }) + '\n');
  }
}
