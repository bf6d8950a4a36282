/**
 * The three --lora-paths forms (spec a.3): `PATH`, `NAME=PATH` (split at the first '='), and a JSON object
 * {"lora_name", "lora_path", "pinned"}. A config file may also give an object {name: path} or a list of the JSON
 * objects. Validation rules 5 (malformed JSON entry) and 6 (empty name or path, duplicate name) live here.
 */
import { TsloraError } from '../errors.js';
import type { StartupAdapter } from './serve-config.js';

function usage(message: string, hint: string): TsloraError {
  return new TsloraError('usage', message, { hint, param: 'loraPaths' });
}

const JSON_HINT =
  'Write it as {"lora_name":"sql","lora_path":"./adapters/sql","pinned":true}, or use NAME=PATH (quote it for the shell).';

/** Rule 5: a JSON entry must be an object with non-empty string lora_name and lora_path, and a boolean pinned. */
function fromJsonObject(value: unknown, shown: string): StartupAdapter {
  const record = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  if (!record || typeof record.lora_name !== 'string' || typeof record.lora_path !== 'string') {
    throw usage(
      `--lora-paths entry '${shown}' looks like JSON but needs the keys "lora_name" and "lora_path" (and optionally "pinned").`,
      JSON_HINT,
    );
  }
  const unknownKeys = Object.keys(record).filter((k) => !['lora_name', 'lora_path', 'pinned'].includes(k));
  if (unknownKeys.length > 0) {
    throw usage(
      `--lora-paths entry '${shown}' has unknown key(s) ${unknownKeys.map((k) => `"${k}"`).join(', ')}; allowed are "lora_name", "lora_path" and "pinned".`,
      JSON_HINT,
    );
  }
  if (record.pinned !== undefined && typeof record.pinned !== 'boolean') {
    throw usage(`--lora-paths entry '${shown}' has "pinned": ${JSON.stringify(record.pinned)}; it must be true or false.`, JSON_HINT);
  }
  return { name: record.lora_name.trim(), path: record.lora_path.trim(), pinned: record.pinned === true };
}

/** Rule 6, first half: neither the name nor the path may be empty. */
function checkNonEmpty(adapter: StartupAdapter, shown: string): StartupAdapter {
  if (adapter.name === '') {
    throw usage(`--lora-paths entry '${shown}' has an empty adapter name.`, 'Use NAME=PATH with a non-empty NAME, or just PATH.');
  }
  if (adapter.path === '') {
    throw usage(`--lora-paths entry '${shown}' has an empty path.`, 'Use NAME=PATH with the adapter directory as PATH.');
  }
  return adapter;
}

/** Parses one token (command line, env var, config-file string) without the rule-6 checks. */
function readToken(token: string): StartupAdapter {
  const text = token.trim();
  if (text.startsWith('{') && text.endsWith('}')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw usage(
        `--lora-paths entry '${text}' looks like JSON but needs the keys "lora_name" and "lora_path" (and optionally "pinned"); it is not valid JSON.`,
        JSON_HINT,
      );
    }
    return fromJsonObject(parsed, text);
  }
  const equals = text.indexOf('=');
  if (equals === -1) return { name: text, path: text, pinned: false };
  return { name: text.slice(0, equals).trim(), path: text.slice(equals + 1).trim(), pinned: false };
}

interface ReadEntry {
  adapter: StartupAdapter;
  shown: string;
}

/** One entry of any form: a string token, or (from a config file or JSON list) an object. Rule 5 only. */
function readEntry(entry: unknown): ReadEntry {
  if (typeof entry === 'string') return { adapter: readToken(entry), shown: entry.trim() };
  const shown = JSON.stringify(entry);
  return { adapter: fromJsonObject(entry, shown), shown };
}

/** Parses and checks one entry (rules 5 and 6a); exported for the server's and tests' use. */
export function parseLoraPathEntry(entry: unknown): StartupAdapter {
  const { adapter, shown } = readEntry(entry);
  return checkNonEmpty(adapter, shown);
}

/**
 * Parses the whole --lora-paths value: a list of entries, or a config file's {name: path} object (an object with
 * a "lora_name" key is taken as a single JSON entry). Rule 6, second half: names must be unique.
 */
export function parseLoraPaths(value: unknown): StartupAdapter[] {
  let entries: ReadEntry[];
  if (Array.isArray(value)) {
    entries = value.map(readEntry); // rule 5 for every entry before rule 6 for any
  } else if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if ('lora_name' in record) {
      entries = [readEntry(record)];
    } else {
      entries = Object.entries(record).map(([name, path]) => {
        if (typeof path !== 'string') {
          throw usage(
            `--lora-paths entry '${name}' maps to ${JSON.stringify(path)}; in the {name: path} form every value must be a path string.`,
            'Use a list of {"lora_name","lora_path","pinned"} objects to set pinned.',
          );
        }
        return { adapter: { name: name.trim(), path: path.trim(), pinned: false }, shown: `${name}=${path}` };
      });
    }
  } else {
    entries = [];
  }
  const adapters = entries.map(({ adapter, shown }) => checkNonEmpty(adapter, shown));
  const seen = new Set<string>();
  for (const adapter of adapters) {
    if (seen.has(adapter.name)) {
      throw usage(`adapter name '${adapter.name}' appears twice in --lora-paths.`, 'Give each adapter a distinct NAME (NAME=PATH).');
    }
    seen.add(adapter.name);
  }
  return adapters;
}
