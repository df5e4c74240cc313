// bpf_obj_get_info_by_fd decoded for maps, programs and links (offsets from <linux/bpf.h>).
import { addressOf, check, closeFd, lb } from './libbpf.js';

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export interface ProgInfo {
  type: number;
  id: number;
  name: string;
}

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** for XDP links: the interface the program is attached to */
  xdpIfindex: number;
}

// Larger than any of the three structs today; the kernel requires the unused tail to be zero.
const INFO_BUF = 256;

function rawInfo(fd: number, what: string, fill?: (b: Buffer) => void): Buffer {
  const buf = Buffer.alloc(INFO_BUF);
  fill?.(buf);
  const len = [INFO_BUF];
  check('bpf_obj_get_info_by_fd', lb.bpf_obj_get_info_by_fd(fd, buf, len), what);
  return buf;
}

const cstr = (b: Buffer, off: number, n: number): string => {
  const s = b.subarray(off, off + n);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? n : z).toString();
};

export function mapInfo(fd: number): MapInfo {
  const b = rawInfo(fd, 'map');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cstr(b, 24, 16),
  };
}

export function progInfo(fd: number): ProgInfo {
  const b = rawInfo(fd, 'prog');
  return { type: b.readUInt32LE(0), id: b.readUInt32LE(4), name: cstr(b, 64, 16) };
}

export function linkInfo(fd: number): LinkInfo {
  const b = rawInfo(fd, 'link');
  return { type: b.readUInt32LE(0), id: b.readUInt32LE(4), progId: b.readUInt32LE(8), xdpIfindex: b.readUInt32LE(16) };
}

/** The ids of the maps a program uses (struct bpf_prog_info: nr_map_ids at 52, map_ids at 56). */
export function progMapIds(fd: number): number[] {
  const max = 64;
  const ids = Buffer.alloc(4 * max);
  const b = rawInfo(fd, 'prog', (buf) => {
    buf.writeUInt32LE(max, 52);
    buf.writeBigUInt64LE(addressOf(ids), 56);
  });
  const n = Math.min(b.readUInt32LE(52), max);
  return Array.from({ length: n }, (_, i) => ids.readUInt32LE(4 * i));
}

/** progMapIds of the program with this id (it may be gone: then none). */
export function progMapIdsById(id: number): number[] {
  const fd = lb.bpf_prog_get_fd_by_id(id);
  if (fd < 0) return [];
  try {
    return progMapIds(fd);
  } finally {
    closeFd(fd);
  }
}
