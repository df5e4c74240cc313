// End to end: every data plane x number of services x flow mode, each in a fresh topology.
import { ADDR, createTopology, destroyTopology } from './topology.js';
import { measureLoad, type FlowMode, type LoadResult } from './traffic.js';
import { setupDataPlane, teardownDataPlane, type DataPlaneName, type SetupResult } from './dataplanes.js';
import { makeServices, withNodePorts } from './rulesets.js';

export interface E2eOptions {
  sizes: number[];
  dataplanes: DataPlaneName[];
  modes: FlowMode[];
  warmupMs: number;
  measureMs: number;
  maxPackets: number;
  loadCapMs: number;
  bpffs: string;
  log: (msg: string) => void;
  /** clusterip (default): traffic to the measured service's VIP; nodeport: every service that fits
   * the range has a node port too, and traffic goes to the node's address on the measured one's */
  via?: 'clusterip' | 'nodeport';
}

export interface E2eRow extends SetupResult {
  dataplane: DataPlaneName;
  services: number;
  results: LoadResult[];
  error?: string;
}

export async function runE2e(o: E2eOptions): Promise<E2eRow[]> {
  const rows: E2eRow[] = [];
  for (const n of o.sizes) {
    const nodePort = o.via === 'nodeport';
    const services = nodePort ? withNodePorts(makeServices(n)) : makeServices(n);
    const target = services[services.length - 1]; // traffic goes to the last-listed service
    const [dstAddr, dstPort] = nodePort ? [ADDR.nodeIn, target.nodePort!] : [target.vip, target.port];
    const label = nodePort ? 'e2e node port' : 'e2e';
    for (const dp of o.dataplanes) {
      const row: E2eRow = { dataplane: dp, services: n, results: [] };
      rows.push(row);
      const topo = await createTopology(target.endpoints);
      try {
        Object.assign(row, await setupDataPlane(dp, topo, services, { loadCapMs: o.loadCapMs, bpffs: o.bpffs }));
        if (row.unavailable || row.capped) {
          o.log(`${label} ${dp} n=${n}: ${row.unavailable ?? `load capped at ${o.loadCapMs} ms`}`);
          continue;
        }
        for (const mode of o.modes) {
          const r = await measureLoad(topo, mode, dstAddr, dstPort, o);
          row.results.push(r);
          o.log(`${label} ${dp} n=${n} ${mode}: ${Math.round(r.deliveredPps)} pps delivered of ${Math.round(r.offeredPps)} offered` +
            (row.loadMs !== undefined ? ` (load ${Math.round(row.loadMs)} ms)` : ''));
        }
      } catch (e) {
        row.error = (e as Error).message;
        o.log(`${label} ${dp} n=${n}: error: ${row.error}`);
      } finally {
        await destroyTopology(topo);
        teardownDataPlane(dp, topo, { loadCapMs: o.loadCapMs, bpffs: o.bpffs });
      }
    }
  }
  return rows;
}
