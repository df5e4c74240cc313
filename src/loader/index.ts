// The loader's public API.
export { adoptPinnedProgram, createMaps, loadDataplane, openPinned, DEFAULT_OBJECT, PROG_PIN, type Dataplane, type LoadOptions } from './dataplane.js';
export { BpfObject, specDiffs, type MapSpec } from './object.js';
export { ensureBpffs, pinRoot, preparePinDir, isBpffs, assertNoDots, DEFAULT_BPFFS, PIN_SUBDIR } from './pins.js';
export {
  attachXdp,
  pinLink,
  listLinks,
  detachXdp,
  detachLink,
  updateLinks,
  linkPath,
  ifindexOf,
  type XdpMode,
  type PinnedLink,
} from './xdp.js';
export { testRun, type TestRunResult } from './testrun.js';
export { mapInfo, progInfo, linkInfo, type MapInfo, type ProgInfo, type LinkInfo } from '../sys/info.js';
