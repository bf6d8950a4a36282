/**
 * Turns a raw option value (a command-line string, an environment string, or a JSON value from a config file)
 * into the option's type. Every failure is a usage error that names the option, the value and where it came from.
 */
import { TsloraError } from '../errors.js';
import type { OptionSpec } from './option-types.js';

export type ValueSource =
  | { kind: 'default' }
  | { kind: 'config'; file: string }
  | { kind: 'env'; name: string }
  | { kind: 'flag' };

/** "TSLORA_PORT", "'port' in ./serve.json" or "" (command line and defaults need no origin). */
export function originOf(spec: OptionSpec, source: ValueSource): string {
  if (source.kind === 'env') return source.name;
  if (source.kind === 'config') return `'${spec.key}' in ${source.file}`;
  return '';
}

/** "got 0" or "got 0 from TSLORA_X": the value as the user wrote it, plus where it came from. */
export function gotText(value: unknown, spec: OptionSpec, source: ValueSource): string {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  const origin = originOf(spec, source);
  return origin ? `got ${shown} from ${origin}` : `got ${shown}`;
}

/**
 * How usage hints point at the help text. The config layer does not know which command it serves, so the CLI
 * (reportError) replaces this with "See 'tslora <command> --help'" for the command that failed.
 */
export const HELP_POINTER = 'See --help';

function usage(spec: OptionSpec, expected: string, raw: unknown, source: ValueSource): TsloraError {
  return new TsloraError('usage', `--${spec.flag} must be ${expected} (${gotText(raw, spec, source)}).`, {
    hint: `${HELP_POINTER} for what --${spec.flag} accepts.`,
    param: spec.key,
  });
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

/**
 * Splits a list written as one string: whitespace separates entries, except inside {...} JSON objects and quotes,
 * so `a=./x {"lora_name": "b", "lora_path": "./y"}` is two entries. A value starting with `[` is a JSON list.
 */
export function splitListString(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(trimmed);
      if (Array.isArray(parsed)) return parsed;
    } catch {
      // not JSON: fall through to word splitting, where rule 5 reports malformed entries
    }
  }
  const entries: string[] = [];
  let current = '';
  let depth = 0;
  let quote: string | null = null;
  for (const ch of trimmed) {
    if (quote) {
      if (ch === quote) quote = null;
      current += ch;
    } else if (ch === '"' && depth > 0) {
      quote = ch;
      current += ch;
    } else if (ch === '{') {
      depth++;
      current += ch;
    } else if (ch === '}') {
      depth = Math.max(0, depth - 1);
      current += ch;
    } else if (/\s/.test(ch) && depth === 0) {
      if (current) entries.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) entries.push(current);
  return entries;
}

export function coerceValue(spec: OptionSpec, raw: unknown, source: ValueSource): unknown {
  switch (spec.type) {
    case 'string':
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number' && source.kind === 'config') return String(raw);
      throw usage(spec, 'a string', raw, source);
    case 'int': {
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
      if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) {
        const value = Number(raw);
        if (Number.isSafeInteger(value)) return value;
      }
      throw usage(spec, 'an integer', raw, source);
    }
    case 'float': {
      const value = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
      if (Number.isFinite(value)) return value;
      throw usage(spec, 'a number', raw, source);
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      const word = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      throw usage(spec, 'true or false (also 1/0, yes/no, on/off)', raw, source);
    }
    case 'enum': {
      const choices = spec.choices ?? [];
      if (typeof raw === 'string' && choices.includes(raw.trim())) return raw.trim();
      throw usage(spec, `one of ${choices.join(', ')}`, raw, source);
    }
    case 'list': {
      if (Array.isArray(raw)) return [...raw]; // already split (shell words, JSON list): entries may contain spaces
      if (typeof raw === 'string') return splitListString(raw);
      if (raw !== null && typeof raw === 'object' && source.kind === 'config') return raw; // {name: path} form
      throw usage(spec, 'a list of values', raw, source);
    }
  }
}
