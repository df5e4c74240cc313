// A BPF_F_MMAPABLE map's values mapped into this process, read and written as memory.
import koffi from 'koffi';
import { KpError } from '../errors.js';
import { libcFns, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from './libbpf.js';

export interface Mapping {
  ptr: unknown;
  /** the mapped length: `bytes` rounded up to whole pages */
  bytes: number;
  /** the first `bytes` of it */
  buffer: ArrayBuffer;
}

export function mapShared(fd: number, bytes: number, what: string): Mapping {
  const len = Math.ceil(bytes / 4096) * 4096;
  const ptr = libcFns.mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (ptr === null || koffi.address(ptr) === MAP_FAILED) throw new KpError('KP_ERR_STATE', `mmap of ${what} failed (errno ${koffi.errno()})`);
  return { ptr, bytes: len, buffer: koffi.view(ptr, bytes) as ArrayBuffer };
}

export const unmap = (m: Mapping): void => void libcFns.munmap(m.ptr, m.bytes);
