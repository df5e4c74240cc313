// The daemon reads its 2 MB config at every event in its directory. A fresh buffer each time is
// external memory the garbage collector is made to account for (a full collection of a 300 MB heap
// every few reloads); two buffers, one holding the bytes last applied and one to read into, are not.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { KpError } from '../errors.js';

export class FileBuffers {
  /** the buffer the kept bytes are in, and the one the next read goes to */
  private kept?: Buffer;
  private spare?: Buffer;
  private last?: Buffer;

  /** The file's bytes, in the spare buffer: valid until the next read, unless kept. */
  read(path: string): Buffer {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw readError(path, e);
    }
    try {
      let buf = this.spareFor(fstatSync(fd).size + 1);
      let n = 0;
      for (;;) {
        if (n === buf.length) {
          // The file grew since fstat: a larger buffer, with what was read so far.
          const bigger = Buffer.allocUnsafeSlow(2 * buf.length);
          buf.copy(bigger, 0, 0, n);
          this.spare = buf = bigger;
        }
        const got = readSync(fd, buf, n, buf.length - n, null);
        if (got === 0) break;
        n += got;
      }
      this.last = buf.subarray(0, n);
      return this.last;
    } catch (e) {
      throw readError(path, e);
    } finally {
      closeSync(fd);
    }
  }

  /** The bytes the last read returned stay valid: the next read goes to the other buffer. */
  keep(): void {
    if (!this.last) return;
    [this.kept, this.spare] = [this.spare, this.kept];
    this.last = undefined;
  }

  private spareFor(size: number): Buffer {
    if (!this.spare || this.spare.length < size) this.spare = Buffer.allocUnsafeSlow(Math.ceil(size * 1.25));
    return this.spare;
  }
}

function readError(path: string, e: unknown): KpError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new KpError('KP_ERR_CONFIG', `cannot read config file ${path}: ${code}`, { op: 'read' });
}
