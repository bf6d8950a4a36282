/**
 * The model's recommended sampling parameters (generation_config.json: temperature, top_p, top_k, min_p,
 * repetition_penalty) as request defaults: SGLang applies them to every generation route whenever a request leaves
 * a field unset (its default `--sampling-defaults model`). Values outside the API's ranges are dropped with a
 * warning instead of turning every request into a 400.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** In the API's field names (sampling_params of /generate). */
export interface ModelSamplingDefaults {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
}

type Field = keyof ModelSamplingDefaults;

const RULES: Record<Field, { ok: (v: number) => boolean; range: string }> = {
  temperature: { ok: (v) => v >= 0, range: '≥ 0' },
  top_p: { ok: (v) => v > 0 && v <= 1, range: '(0, 1]' },
  top_k: { ok: (v) => Number.isInteger(v) && (v === -1 || v >= 1), range: '-1 or an integer ≥ 1' },
  min_p: { ok: (v) => v >= 0 && v <= 1, range: '[0, 1]' },
  repetition_penalty: { ok: (v) => v > 0 && v <= 2, range: '(0, 2]' },
};

/** Picks the sampling fields of a parsed generation_config.json; `warn` hears about values that were dropped. */
export function samplingDefaultsFromGenerationConfig(json: unknown, warn: (message: string) => void = () => {}): ModelSamplingDefaults {
  const out: ModelSamplingDefaults = {};
  if (typeof json !== 'object' || json === null) return out;
  const record = json as Record<string, unknown>;
  for (const field of Object.keys(RULES) as Field[]) {
    let value = record[field];
    if (value === undefined || value === null) continue;
    // transformers' top_k 0 means "no top-k filter"; the API spells that -1.
    if (field === 'top_k' && value === 0) value = -1;
    if (typeof value !== 'number' || !Number.isFinite(value) || !RULES[field].ok(value)) {
      warn(`generation_config.json: ${field} = ${JSON.stringify(value)} is outside ${RULES[field].range}; requests keep the API default`);
      continue;
    }
    out[field] = value;
  }
  return out;
}

/** Reads <modelDir>/generation_config.json (absent or unreadable: no defaults). */
export function readModelSamplingDefaults(modelDir: string, warn: (message: string) => void = () => {}): ModelSamplingDefaults {
  const path = join(modelDir, 'generation_config.json');
  if (!existsSync(path)) return {};
  try {
    return samplingDefaultsFromGenerationConfig(JSON.parse(readFileSync(path, 'utf8')), warn);
  } catch (error) {
    warn(`${path} could not be read (${(error as Error).message}); requests keep the API defaults`);
    return {};
  }
}

/**
 * A raw sampling_params value (object, list of objects, or absent) with every field the request left unset filled
 * from the model defaults; anything else passes through untouched for the schema to reject.
 */
export function fillSamplingDefaults(raw: unknown, defaults: ModelSamplingDefaults): unknown {
  if (Object.keys(defaults).length === 0) return raw;
  const fill = (item: unknown): unknown => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return item;
    const out: Record<string, unknown> = { ...(item as Record<string, unknown>) };
    for (const [field, value] of Object.entries(defaults)) if (out[field] === undefined || out[field] === null) out[field] = value;
    return out;
  };
  if (raw === undefined || raw === null) return fill({});
  return Array.isArray(raw) ? raw.map(fill) : fill(raw);
}

/** One line for the start-up log, e.g. `temperature=0.7 top_p=0.8`; null when the model has none. */
export function describeSamplingDefaults(defaults: ModelSamplingDefaults): string | null {
  const parts = Object.entries(defaults).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(' ') : null;
}
