// Where a JSON text stops being JSON, and what is wrong with a file's encoding: Node 20's
// JSON.parse gives no position for "Unexpected token", and a byte order mark or a UTF-16 file
// shows up as an invisible token. Only run on text JSON.parse refused, so speed does not matter.
import { isAscii } from 'node:buffer';

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

/** The offset of the first character that makes `text` invalid JSON (its length if it ends too early), or -1. */
export function jsonErrorAt(text: string): number {
  const n = text.length;
  let i = 0;
  const stack: ('{' | '[')[] = [];
  const ws = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  /** A string at i (its opening quote); false with i at the bad character. */
  const str = (): boolean => {
    if (text[i] !== '"') return false;
    for (i++; i < n; ) {
      const c = text.charCodeAt(i);
      if (c === 0x22) return (i++, true);
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) return (i++, false);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else return (i++, false);
        continue;
      }
      i++;
    }
    return false;
  };
  /** A key and its colon, after '{' or ','. */
  const key = (): boolean => {
    ws();
    if (!str()) return false;
    ws();
    if (text[i] !== ':') return false;
    i++;
    return true;
  };
  let want: 'value' | 'next' = 'value';
  for (;;) {
    ws();
    if (want === 'value') {
      if (i >= n) return n;
      const c = text[i];
      if (c === '{' || c === '[') {
        i++;
        ws();
        if (text[i] === (c === '{' ? '}' : ']')) {
          i++;
          want = 'next';
          continue;
        }
        stack.push(c);
        if (c === '{' && !key()) return i;
        continue;
      }
      if (c === '"') {
        if (!str()) return i;
      } else if (c === '-' || (c >= '0' && c <= '9')) {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m) return c === '-' ? i + 1 : i; // the character after a lone minus, as V8 says
        i += m[0].length;
      } else {
        const lit = ['true', 'false', 'null'].find((l) => text.startsWith(l, i));
        if (!lit) return i;
        i += lit.length;
      }
      want = 'next';
      continue;
    }
    const top = stack[stack.length - 1];
    if (top === undefined) return i < n ? i : -1;
    const c = text[i];
    if (c === ',') {
      i++;
      if (top === '{' && !key()) return i;
      want = 'value';
    } else if (c === (top === '{' ? '}' : ']')) {
      stack.pop();
      i++;
    } else {
      return i;
    }
  }
}

/** What is wrong with a file's bytes as UTF-8 JSON, or undefined. */
export function encodingProblem(bytes: Uint8Array): string | undefined {
  const r = decodeConfigBytes(bytes);
  return typeof r === 'string' ? undefined : r.problem;
}

/** A file's bytes as text, decoded once (a 2 MB config is checked and decoded in one pass), or what
 * is wrong with them as UTF-8 JSON. */
export function decodeConfigBytes(bytes: Uint8Array): string | { problem: string } {
  const [a, b, c] = bytes;
  if (a === 0xef && b === 0xbb && c === 0xbf) return { problem: 'starts with a UTF-8 byte order mark (EF BB BF): save it as UTF-8 without a BOM' };
  if ((a === 0xff && b === 0xfe) || (a === 0xfe && b === 0xff)) return { problem: `is UTF-16 (byte order mark ${hex(a)} ${hex(b)}): save it as UTF-8` };
  // UTF-16 without a mark: JSON starts with ASCII, so every other byte of the first ones is zero.
  if (bytes.length >= 2 && (bytes[0] === 0 || bytes[1] === 0)) return { problem: 'looks like UTF-16 or UTF-32 (zero bytes between its first characters): save it as UTF-8' };
  // Nearly every config is ASCII, where UTF-8 and Latin-1 agree: that copy is ~50x faster than the checking decoder.
  if (isAscii(bytes)) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { problem: `is not valid UTF-8 (from byte ${firstBadUtf8(bytes)}): save it as UTF-8` };
  }
}

const hex = (x: number) => x.toString(16).toUpperCase().padStart(2, '0');

/** Where a UTF-8 sequence first breaks (lead byte and continuation bytes; TextDecoder decides). */
function firstBadUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!len || i + len > b.length) return i;
    for (let k = 1; k < len; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return 0;
}
