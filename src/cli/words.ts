// VPP-style "keyword value" argument parsing: `vip add 90.1.2.1/32 protocol tcp port 3306 target 3307`.
import { KpError } from '../errors.js';

/** Keyword arguments are parsed inside actions, so they fail with KP_ERR_ARG (exit 2). */
const InvalidArgumentError = class extends KpError {
  constructor(message: string) {
    super('KP_ERR_ARG', message);
  }
};

export type Protocol = 'tcp' | 'udp';

export function parseUint(value: string, name: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(value)) {
    throw new InvalidArgumentError(`${name}: expected an integer from ${min} to ${max}, got '${value}'`);
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new InvalidArgumentError(`${name}: expected an integer from ${min} to ${max}, got ${value}`);
  }
  return n;
}

export function parseProtocol(value: string): Protocol {
  const v = value.toLowerCase();
  if (v !== 'tcp' && v !== 'udp') {
    throw new InvalidArgumentError(`protocol: expected tcp or udp, got '${value}'`);
  }
  return v;
}

/** A keyword's value parser, or null for a keyword that takes no value (a flag). */
export type KeywordParser = ((value: string) => unknown) | null;

export interface ParsedWords {
  opts: Record<string, unknown>;
  rest: string[];
}

/**
 * Split words into known `keyword value` pairs (and flags) and the remaining positional words.
 * `aliases` maps alternative spellings onto a keyword (target → target_port).
 */
export function parseWords(
  words: string[],
  keywords: Record<string, KeywordParser>,
  aliases: Record<string, string> = {},
): ParsedWords {
  const opts: Record<string, unknown> = {};
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    const key = aliases[word] ?? word;
    if (!(key in keywords)) {
      rest.push(word);
      continue;
    }
    if (key in opts) throw new InvalidArgumentError(`${key}: given more than once`);
    const parser = keywords[key];
    if (parser === null) {
      opts[key] = true;
      continue;
    }
    const value = words[i + 1];
    if (value === undefined) throw new InvalidArgumentError(`${key}: expected a value after '${word}'`);
    opts[key] = parser(value);
    i++;
  }
  return { opts, rest };
}
