/**
 * Layering of option values: defaults < config file < environment < flags. The result records, for each key,
 * the coerced value and where it came from, so that validation messages can point at the right place.
 */
import { TsloraError } from '../errors.js';
import { coerceValue, HELP_POINTER, type ValueSource } from './coerce.js';
import { closestOptionName, findOption } from './option-names.js';
import type { OptionSpec } from './option-types.js';

export interface ConfigFileValues {
  /** Path of the file as the user gave it (for messages and to resolve relative paths). */
  path: string;
  /** The parsed JSON object. */
  values: Record<string, unknown>;
}

export interface LayeredValue {
  value: unknown; // undefined = unset
  source: ValueSource;
  /** The value before coercion, as written (for messages). */
  raw?: unknown;
}

export type LayeredValues = Map<string, LayeredValue>;

/** Maps a config file's keys (camelCase keys, flag names or aliases) to option keys; unknown keys are an error. */
export function configFileByKey(table: readonly OptionSpec[], file: ConfigFileValues): Map<string, unknown> {
  const byKey = new Map<string, unknown>();
  for (const [name, value] of Object.entries(file.values)) {
    const spec = findOption(table, name);
    if (!spec || spec.key === 'config') {
      const suggestion = spec ? undefined : closestOptionName(table, name);
      throw new TsloraError(
        'usage',
        spec
          ? `config file ${file.path} may not name another config file (key '${name}').`
          : `unknown key '${name}' in config file ${file.path}.`,
        {
          hint: suggestion
            ? `Did you mean '${suggestion}'? Keys are the flag names or their camelCase forms (see --help).`
            : 'Keys are the flag names of --help (e.g. "max-loras-per-batch") or their camelCase forms ("maxLorasPerBatch").',
          param: name,
        },
      );
    }
    if (byKey.has(spec.key)) {
      throw new TsloraError('usage', `config file ${file.path} sets '${spec.key}' twice (as '${name}' and another spelling).`, {
        hint: 'Keep one of the two keys.',
        param: name,
      });
    }
    byKey.set(spec.key, value);
  }
  return byKey;
}

/**
 * Resolves every option of the table. `flagValues` holds command-line values keyed by option key (undefined =
 * not given); `env` is the process environment (empty strings count as unset).
 */
export function layerValues(
  table: readonly OptionSpec[],
  flagValues: Record<string, unknown>,
  env: Record<string, string | undefined>,
  configFile?: ConfigFileValues,
): LayeredValues {
  const fromFile = configFile ? configFileByKey(table, configFile) : new Map<string, unknown>();
  for (const name of Object.keys(flagValues)) {
    if (flagValues[name] !== undefined && !table.some((spec) => spec.key === name)) {
      throw new TsloraError('usage', `unknown option '${name}'.`, { hint: `${HELP_POINTER} for the options.`, param: name });
    }
  }
  const result: LayeredValues = new Map();
  for (const spec of table) {
    const flagValue = flagValues[spec.key];
    const envValue = spec.env ? env[spec.env] : undefined;
    let layered: LayeredValue;
    if (flagValue !== undefined) {
      layered = { value: coerceValue(spec, flagValue, { kind: 'flag' }), source: { kind: 'flag' }, raw: flagValue };
    } else if (envValue !== undefined && envValue !== '' && spec.env) {
      const source: ValueSource = { kind: 'env', name: spec.env };
      layered = { value: coerceValue(spec, envValue, source), source, raw: envValue };
    } else if (fromFile.has(spec.key) && fromFile.get(spec.key) !== null && configFile) {
      const source: ValueSource = { kind: 'config', file: configFile.path };
      const raw = fromFile.get(spec.key);
      layered = { value: coerceValue(spec, raw, source), source, raw };
    } else {
      layered = { value: spec.defaultValue, source: { kind: 'default' } };
    }
    result.set(spec.key, layered);
  }
  return result;
}
