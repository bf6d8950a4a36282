/**
 * The model's recommended sampling parameters (generation_config.json: temperature, top_p, top_k, min_p,
 * repetition_penalty) as request defaults: SGLang applies them to every generation route whenever a request leaves
 * a field unset (its default `--sampling-defaults model`). Values outside the API's ranges are dropped with a
 * warning instead of turning every request into a 400.
 */
import { samplingDefaultsFromGenerationConfig, type ModelSamplingDefaults } from '../engine/model/sampling-defaults.js';

export { samplingDefaultsFromGenerationConfig, type ModelSamplingDefaults };

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
