// What JSON.parse lets through silently: a key given twice in one object (the last wins, so a file
// with two pasted "vips" snippets deletes services) and nesting deep enough to overflow the
// validators' recursion. One iterative pass over text that JSON.parse has already accepted.

/** Deeper than any kpbpf config (a backend object sits at depth 4). */
export const MAX_JSON_DEPTH = 32;

interface Frame {
  kind: 'object' | 'array';
  path: string;
  keys?: Set<string>;
  index: number;
  /** the key whose value comes next (objects) */
  key?: string;
}

const escapePointer = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

/** Errors as `PATH: message` (JSON Pointer paths, as ajv's); [] when the structure is fine. */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): string[] {
  const errs: string[] = [];
  const stack: Frame[] = [];
  /** The path of the value that starts now, in the innermost container. */
  const valuePath = (): string => {
    const top = stack[stack.length - 1];
    if (!top) return '';
    return top.kind === 'array' ? `${top.path}/${top.index}` : `${top.path}/${escapePointer(top.key ?? '')}`;
  };
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      // A string: find its end, decode it only when it is an object key.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (expectKey && top?.kind === 'object') {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys!.has(key)) errs.push(`${top.path}/${escapePointer(key)}: the key "${key.slice(0, 40)}" is given twice in one object (the last would win)`);
        top.keys!.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      const path = valuePath();
      if (stack.length >= maxDepth) {
        errs.push(`${path || '/'}: nested deeper than ${maxDepth} levels`);
        return errs;
      }
      stack.push({ kind: c === '{' ? 'object' : 'array', path, index: 0, ...(c === '{' ? { keys: new Set<string>() } : {}) });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectKey = false;
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.kind === 'array') top.index++;
      else expectKey = true;
    }
  }
  return errs;
}
