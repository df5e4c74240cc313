// Which backends a VIP's Maglev table is made of: the active ones (of this node only, for a local
// traffic policy's table); while any of them is ready, not the terminating ones (KEP-1669: a
// terminating endpoint takes new connections only while no ready one exists).
import { buildMaglevTable, type MaglevBackend } from '../maglev/table.js';
import { BACKEND_STATE, type Backend } from '../maps/codecs.js';

/** A backend slot: its id (what the table holds) and what it holds. */
export interface Slot {
  id: number;
  b: Backend;
}

export function tableBackends(ids: Iterable<number>, slots: readonly (Backend | undefined)[], localOnly = false): Slot[] {
  const active: Slot[] = [];
  let terminating = 0;
  for (const id of ids) {
    const b = slots[id]!;
    if (b.state !== BACKEND_STATE.active || (localOnly && !b.local)) continue;
    active.push({ id, b });
    if (b.terminating) terminating++;
  }
  return terminating && terminating < active.length ? active.filter(({ b }) => !b.terminating) : active;
}

/** The Maglev input of these slots: the address keys a backend's permutation. */
export const maglevBackends = (use: readonly Slot[]): MaglevBackend[] => use.map(({ id, b }) => ({ id, key: b.addr, weight: b.weight }));

/** A table of `size` slots over `use`, or undefined when there is no backend to fill it. */
export function buildTable(use: readonly Slot[], size: number): Uint32Array | undefined {
  return use.length ? buildMaglevTable(maglevBackends(use), size) : undefined;
}
