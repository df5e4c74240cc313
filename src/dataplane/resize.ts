// A connection-table resize: a new kp_ct of the new size is made beside the old one (set aside as
// kp_ct_old), the connections are copied into it, the attached interfaces switch to a program that
// uses it, and the old table is dropped. A crash or a failure can cut this short after any step;
// the next writer then finds kp_ct_old pinned and finishes or undoes the resize, by the one fact
// that says which table is live: whether an attached interface already runs a program that uses
// the new one (the connections were copied before the first switched).
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { injectAt } from '../inject.js';
import { CT_MAP, loadDataplane, openPinned, PROG_PIN, type Dataplane } from '../loader/dataplane.js';
import { updateCgroupLinks } from '../loader/cgroup.js';
import { linkInfo, mapInfo, progInfo, progMapIdsById } from '../sys/info.js';
import { withPinnedFd } from '../sys/libbpf.js';
import { listLinks, updateLinks } from '../loader/xdp.js';
import type { BpfMap } from '../maps/map.js';
import { ct as ctCodec, flowKey } from '../maps/codecs.js';

/** Where the old table waits while a resize runs. */
export const CT_OLD_PIN = 'kp_ct_old';

/** The resized data plane, in place of `current` (which the caller closes). On a failure nothing
 * changed: the old table and a program using it serve every interface again. */
export function resizeTable(pinDir: string, current: Dataplane, buckets: number): Dataplane {
  const oldPin = join(pinDir, CT_OLD_PIN);
  // Set aside, not removed: a failed load changes nothing.
  renameSync(join(pinDir, CT_MAP), oldPin);
  injectAt('resize.set-aside');
  let dp: Dataplane | undefined;
  try {
    dp = loadDataplane({ pinDir, buckets, objectPath: process.env.KPBPF_OBJECT, keepLinks: true });
    injectAt('resize.loaded');
    copyConnections(current.maps.ct, dp.maps.ct);
    injectAt('resize.copied');
    dp.linkTailCalls(); // the old program's IPv6 frames now meet the new table, copied already
    updateLinks(pinDir, dp.progFd);
    injectAt('resize.switched');
    if (dp.sockProgs) updateCgroupLinks(pinDir, dp.sockProgs);
    rmSync(oldPin);
    return dp;
  } catch (e) {
    dp?.close();
    undoResize(pinDir);
    throw e;
  }
}

/**
 * A resize that a crash cut short (kp_ct_old is pinned), finished or undone; undefined when none
 * was. The caller holds the writer lock, so no resize is running.
 */
export function recoverResize(pinDir: string): 'finished' | 'undone' | undefined {
  if (!existsSync(join(pinDir, CT_OLD_PIN))) return undefined;
  const newTable = existsSync(join(pinDir, CT_MAP)) ? pinnedMapId(join(pinDir, CT_MAP)) : undefined;
  const switched = newTable !== undefined && linkedProgIds(pinDir).some((id) => progMapIdsById(id).includes(newTable));
  if (!switched) {
    undoResize(pinDir);
    return 'undone';
  }
  // Some interfaces run the new program: all of them, and the socket hooks, switch to it.
  const dp = openPinned(pinDir);
  try {
    updateLinks(pinDir, dp.progFd);
    if (dp.sockProgs) updateCgroupLinks(pinDir, dp.sockProgs);
  } finally {
    dp.close();
  }
  rmSync(join(pinDir, CT_OLD_PIN));
  return 'finished';
}

/** The old table back in place, and every interface on a program that uses it. */
function undoResize(pinDir: string): void {
  const ctPin = join(pinDir, CT_MAP);
  const oldPin = join(pinDir, CT_OLD_PIN);
  if (!existsSync(oldPin)) return;
  rmSync(ctPin, { force: true });
  renameSync(oldPin, ctPin);
  const table = pinnedMapId(ctPin);
  const progs = [pinnedProgId(join(pinDir, PROG_PIN)), ...linkedProgIds(pinDir)].filter((id): id is number => id !== undefined);
  if (progs.every((id) => progMapIdsById(id).includes(table))) return; // the load had failed: nothing else moved
  // A program over the old table, attached interfaces and socket hooks switched to it, and the
  // IPv6 tail call pointed at its own.
  const buckets = mapInfoOf(ctPin).maxEntries / 2;
  loadDataplane({ pinDir, buckets, objectPath: process.env.KPBPF_OBJECT }).close();
}

const mapInfoOf = (path: string) => withPinnedFd(path, mapInfo);
const pinnedMapId = (path: string): number => mapInfoOf(path).id;

const pinnedProgId = (path: string): number | undefined => (existsSync(path) ? withPinnedFd(path, (fd) => progInfo(fd).id) : undefined);

const linkedProgIds = (pinDir: string): number[] => listLinks(pinDir).map((l) => withPinnedFd(l.path, (fd) => linkInfo(fd).progId));

/**
 * Every connection into the new table, a batch at a time (16M connections are 32M entries: one
 * buffer per entry would not fit).
 */
function copyConnections(from: BpfMap<unknown, unknown>, to: BpfMap<unknown, unknown>): void {
  const ks = flowKey.size;
  const vs = ctCodec.size;
  const CHUNK = 8192;
  const keys = Buffer.alloc(ks * CHUNK);
  const vals = Buffer.alloc(vs * CHUNK);
  let n = 0;
  const flush = () => {
    if (n) to.updateBatchRaw(keys.subarray(0, n * ks), vals.subarray(0, n * vs), n);
    n = 0;
  };
  const ok = from.scanBatch((k, ko, v, vo) => {
    k.copy(keys, n * ks, ko, ko + ks);
    v.copy(vals, n * vs, vo, vo + vs);
    if (++n === CHUNK) flush();
  });
  if (ok) flush();
}
