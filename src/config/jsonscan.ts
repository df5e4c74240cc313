// What JSON.parse lets through silently: a key given twice in one object (the last wins, so a file
// with two pasted "vips" snippets deletes services) and nesting deep enough to overflow the
// validators' recursion. One iterative pass over text that JSON.parse has already accepted, which
// also finds where each VIP's text is (the daemon compares VIPs by their text).

/** Deeper than any kpbpf config (a backend object sits at depth 4). */
export const MAX_JSON_DEPTH = 32;

interface Frame {
  array: boolean;
  /** the frame's own JSON Pointer, made only when an error needs it */
  parent?: Frame;
  /** the key (objects) or index (arrays) this frame has in its parent */
  at: string | number;
  keys?: Set<string>;
  index: number;
  /** the key whose value comes next (objects) */
  key?: string;
  start: number;
}

export interface JsonScan {
  /** `PATH: message` (JSON Pointer paths, as ajv's); [] when the structure is fine */
  errors: string[];
  /** the text of each object in the top-level "vips" array, by index ("" for a non-object) */
  vipTexts: string[];
  /** where each of those texts starts in the document (-1 for a non-object) */
  vipStarts: number[];
}

const escapePointer = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

const pointer = (f: Frame | undefined): string => {
  const parts: string[] = [];
  for (let x = f; x?.parent; x = x.parent) parts.push(typeof x.at === 'number' ? String(x.at) : escapePointer(x.at));
  return parts.reverse().map((p) => `/${p}`).join('');
};

const QUOTE = 34;
const BACKSLASH = 92;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;
const COMMA = 44;

/** The index of the quote that closes the string opened at `i`. */
function stringEnd(text: string, i: number): number {
  let j = i;
  for (;;) {
    j = text.indexOf('"', j + 1);
    if (j < 0) return text.length;
    let slashes = 0;
    for (let k = j - 1; text.charCodeAt(k) === BACKSLASH; k--) slashes++;
    if (slashes % 2 === 0) return j;
  }
}

export function scanJsonText(text: string, maxDepth = MAX_JSON_DEPTH): JsonScan {
  const errors: string[] = [];
  const vipTexts: string[] = [];
  const vipStarts: number[] = [];
  const stack: Frame[] = [];
  let top: Frame | undefined;
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // A string: find its end, decode it only when it is an object key.
      const j = stringEnd(text, i);
      if (expectKey && top && !top.array) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        if (top.keys!.has(key)) errors.push(`${pointer(top)}/${escapePointer(key)}: the key "${key.slice(0, 40)}" is given twice in one object (the last would win)`);
        top.keys!.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j;
    } else if (c === LBRACE || c === LBRACKET) {
      const at = top ? (top.array ? top.index : (top.key ?? '')) : '';
      if (stack.length >= maxDepth) {
        const f: Frame = { array: false, parent: top, at, index: 0, start: i };
        errors.push(`${pointer(f) || '/'}: nested deeper than ${maxDepth} levels`);
        return { errors, vipTexts, vipStarts };
      }
      top = { array: c === LBRACKET, parent: top, at, index: 0, start: i, ...(c === LBRACE ? { keys: new Set<string>() } : {}) };
      stack.push(top);
      expectKey = c === LBRACE;
    } else if (c === RBRACE || c === RBRACKET) {
      const done = stack.pop();
      top = stack[stack.length - 1];
      // An element of /vips: the root object, its "vips" array, then the element.
      if (done && c === RBRACE && stack.length === 2 && top!.array && top!.at === 'vips' && !stack[0].array) {
        vipTexts[done.at as number] = text.slice(done.start, i + 1);
        vipStarts[done.at as number] = done.start;
      }
      expectKey = false;
    } else if (c === COMMA) {
      if (top?.array) top.index++;
      else expectKey = true;
    }
  }
  for (let k = 0; k < vipTexts.length; k++) {
    vipTexts[k] ??= '';
    vipStarts[k] ??= -1;
  }
  return { errors, vipTexts, vipStarts };
}

/** Errors as `PATH: message` (JSON Pointer paths, as ajv's); [] when the structure is fine. */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): string[] {
  return scanJsonText(text, maxDepth).errors;
}
