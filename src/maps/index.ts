// The maps module's public API.
export * from './addr.js';
export * from './codecs.js';
export { BpfMap, PerCpuMap, addU64, addRecords } from './map.js';
export { KP_MAP_NAMES, kpMapsFromFds, type KpMapName, type KpMaps } from './kpmaps.js';
