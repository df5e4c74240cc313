// End to end: every data plane x number of services x flow mode, each in a fresh topology.
import { createTopology, destroyTopology } from './topology.js';
import { measureLoad, type FlowMode, type LoadResult } from './traffic.js';
import { setupDataPlane, teardownDataPlane, type DataPlaneName, type SetupResult } from './dataplanes.js';
import { makeServices } from './rulesets.js';

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
    const services = makeServices(n);
    const target = services[services.length - 1]; // traffic goes to the last-listed service
    for (const dp of o.dataplanes) {
      const row: E2eRow = { dataplane: dp, services: n, results: [] };
      rows.push(row);
      const topo = await createTopology(target.endpoints);
      try {
        Object.assign(row, await setupDataPlane(dp, topo, services, { loadCapMs: o.loadCapMs, bpffs: o.bpffs }));
        if (row.unavailable || row.capped) {
          o.log(`e2e ${dp} n=${n}: ${row.unavailable ?? `load capped at ${o.loadCapMs} ms`}`);
          continue;
        }
        for (const mode of o.modes) {
          const r = await measureLoad(topo, mode, target.vip, target.port, o);
          row.results.push(r);
          o.log(`e2e ${dp} n=${n} ${mode}: ${Math.round(r.deliveredPps)} pps delivered of ${Math.round(r.offeredPps)} offered` +
            (row.loadMs !== undefined ? ` (load ${Math.round(row.loadMs)} ms)` : ''));
        }
      } catch (e) {
        row.error = (e as Error).message;
        o.log(`e2e ${dp} n=${n}: error: ${row.error}`);
      } finally {
        await destroyTopology(topo);
        teardownDataPlane(dp, topo, { loadCapMs: o.loadCapMs, bpffs: o.bpffs });
      }
    }
  }
  return rows;
}
