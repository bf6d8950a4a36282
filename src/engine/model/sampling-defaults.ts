/**
 * The model's recommended sampling parameters (generation_config.json: temperature, top_p, top_k, min_p,
 * repetition_penalty), validated against the API's ranges, in the API's field names. The one parser of these fields:
 * the model loader exposes its result (LoadedModel.samplingDefaults) and the server applies it to requests
 * (src/server/sampling-defaults.ts).
 */

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
      warn(`${field} = ${JSON.stringify(value)} is outside ${RULES[field].range}; requests keep the API default`);
      continue;
    }
    out[field] = value;
  }
  return out;
}
