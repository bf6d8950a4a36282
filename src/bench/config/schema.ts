/**
 * The bench experiment config (bench-configs/*.json): model, adapters, server variants, workload, sweep levels.
 * Validated with zod; every error names the JSON path of the offending field (see load-config.ts).
 */
import { z } from 'zod';

const positiveInt = z.number().int().positive();

export const lengthDistSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('fixed'), value: positiveInt }).strict(),
  z.object({ type: z.literal('uniform'), min: positiveInt, max: positiveInt }).strict()
    .refine((d) => d.min <= d.max, { message: 'min must be <= max' }),
  z.object({
    type: z.literal('lognormal'),
    /** median of the distribution, in tokens */
    median: z.number().positive(),
    sigma: z.number().positive(),
    min: positiveInt.default(1),
    max: positiveInt,
  }).strict(),
]);
export type LengthDist = z.infer<typeof lengthDistSchema>;

export const popularitySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('uniform') }).strict(),
  /** p(i) ∝ (i+1)^-s over the adapter list order. */
  z.object({ type: z.literal('zipf'), s: z.number().positive() }).strict(),
  /** round-robin over the adapters: every consecutive request names the next adapter (worst case for caching). */
  z.object({ type: z.literal('distinct') }).strict(),
  /** every request names the first adapter. */
  z.object({ type: z.literal('identical') }).strict(),
  /** no adapter at all: the base model (for slowdown-vs-base runs). */
  z.object({ type: z.literal('base') }).strict(),
]);
export type Popularity = z.infer<typeof popularitySchema>;

export const arrivalSchema = z.discriminatedUnion('type', [
  /** open loop, exponential gaps at rate λ (requests per second). */
  z.object({ type: z.literal('poisson'), ratePerS: z.number().positive() }).strict(),
  /** open loop, Gamma gaps with coefficient of variation cv (cv = 1 is Poisson). */
  z.object({ type: z.literal('gamma'), ratePerS: z.number().positive(), cv: z.number().positive() }).strict(),
  /** open loop with rate ∞: every request is sent at once. */
  z.object({ type: z.literal('burst') }).strict(),
  /** closed loop: this many requests in flight at all times. */
  z.object({ type: z.literal('closed'), concurrency: positiveInt }).strict(),
]);
export type Arrival = z.infer<typeof arrivalSchema>;

/** Workload fields without defaults, so that partial overrides (levels, variants, flags) stay partial. */
const workloadFields = {
  /** measured requests per level (after warm-up) */
  requests: positiveInt,
  /** optional time limit per level, seconds: stop issuing new requests after it */
  durationS: z.number().positive(),
  warmupRequests: z.number().int().min(0),
  arrival: arrivalSchema,
  inputTokens: lengthDistSchema,
  outputTokens: lengthDistSchema,
  popularity: popularitySchema,
  /** fraction of requests sent without an adapter (base model) */
  baseFraction: z.number().min(0).max(1),
  /** use only the first N adapters of the adapter list (adapter-count sweeps) */
  adapterCount: positiveInt,
  seed: z.number().int(),
  /** native POST /generate (cumulative SSE) or OpenAI POST /v1/completions */
  api: z.enum(['generate', 'completions']),
  /** TTFT threshold for SLO attainment, ms */
  sloTtftMs: z.number().positive(),
  /** per-request timeout, seconds */
  requestTimeoutS: z.number().positive(),
};

export const workloadOverrideSchema = z.object(workloadFields).partial().strict();
export type WorkloadOverride = z.infer<typeof workloadOverrideSchema>;

type Full = Required<WorkloadOverride>;
export type Workload = Omit<Full, 'durationS' | 'adapterCount'> & Pick<WorkloadOverride, 'durationS' | 'adapterCount'>;

export const WORKLOAD_DEFAULTS: Workload = {
  requests: 50,
  warmupRequests: 2,
  arrival: { type: 'closed', concurrency: 1 },
  inputTokens: { type: 'fixed', value: 128 },
  outputTokens: { type: 'fixed', value: 32 },
  popularity: { type: 'uniform' },
  baseFraction: 0,
  seed: 42,
  api: 'generate',
  sloTtftMs: 6000,
  requestTimeoutS: 600,
};

/** Defaults < config workload < level < variant < command-line overrides. */
export function resolveWorkload(...layers: (WorkloadOverride | undefined)[]): Workload {
  let workload: Workload = { ...WORKLOAD_DEFAULTS };
  for (const layer of layers) {
    if (!layer) continue;
    const defined = Object.fromEntries(Object.entries(layer).filter(([, v]) => v !== undefined));
    workload = { ...workload, ...defined };
  }
  return workload;
}

export const modelSchema = z.union([
  z.object({ demo: z.literal(true) }).strict(),
  z.object({ path: z.string().min(1) }).strict(),
  z.object({
    synthetic: z.object({
      shape: z.enum(['llama-3.1-8b', 'llama-3.2-1b', 'qwen2.5-0.5b', 'tiny']),
      layers: positiveInt.optional(),
      vocab: z.number().int().min(260).optional(),
      dtype: z.enum(['bf16', 'f16', 'f32']).default('bf16'),
      seed: z.number().int().default(0),
    }).strict(),
  }).strict(),
]);
export type ModelConfig = z.infer<typeof modelSchema>;

const moduleName = z.enum(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'all']);

export const adaptersSchema = z.union([
  /** the demo model's adapters (models/demo/adapters/<name>) */
  z.object({ demo: z.literal(true), names: z.array(z.string().min(1)).optional() }).strict(),
  /** name → path, or a list of paths (name = folder name) */
  z.object({ paths: z.union([z.record(z.string(), z.string().min(1)), z.array(z.string().min(1)).min(1)]) }).strict(),
  /** names already registered on a running server (--url) */
  z.object({ names: z.array(z.string().min(1)).min(1) }).strict(),
  z.object({
    synthetic: z.object({
      count: positiveInt,
      /** ranks used in turn (mixed-rank sets) */
      ranks: z.array(positiveInt).min(1).default([16]),
      targets: z.array(moduleName).min(1).default(['q_proj', 'v_proj']),
      alpha: z.number().positive().optional(),
      seed: z.number().int().default(1),
    }).strict(),
  }).strict(),
  /** no adapters: base model only */
  z.object({ none: z.literal(true) }).strict(),
]);
export type AdaptersConfig = z.infer<typeof adaptersSchema>;

/** Flags for `tslora serve`: {"flag-name": value}; true → --flag, false → --no-flag, arrays → repeated values. */
const flagValue = z.union([z.string(), z.number(), z.boolean(), z.array(z.union([z.string(), z.number()]))]);
export const flagSetSchema = z.record(z.string(), flagValue).superRefine((flags, ctx) => {
  for (const name of Object.keys(flags)) {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `flag names are kebab-case without leading dashes, like "lora-backend" (got '${name}')` });
    }
  }
});
export type FlagSet = z.infer<typeof flagSetSchema>;

export const variantSchema = z.object({
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'variant names start with a letter and use letters, digits, _ and -'),
  description: z.string().optional(),
  flags: flagSetSchema.default({}),
  /** workload changes for this variant only (e.g. popularity "base" for a no-LoRA baseline) */
  workload: workloadOverrideSchema.optional(),
}).strict();
export type Variant = z.infer<typeof variantSchema>;

export const levelSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'level names use letters, digits, _, . and -'),
  workload: workloadOverrideSchema,
}).strict();
export type Level = z.infer<typeof levelSchema>;

export const benchConfigSchema = z.object({
  $schema: z.string().optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  /** free text for humans (e.g. how to size the experiment for a GPU) */
  comment: z.string().optional(),
  model: modelSchema.default({ demo: true }),
  adapters: adaptersSchema.default({ demo: true }),
  /** "startup": --lora-paths at launch; "runtime": POST /load_lora_adapter after /health */
  adapterLoading: z.enum(['startup', 'runtime']).default('startup'),
  /** flags given to every variant's server */
  serverFlags: flagSetSchema.default({}),
  variants: z.array(variantSchema).min(1),
  workload: workloadOverrideSchema.default({}),
  /** sweep levels; each runs the workload with its overrides against the same server */
  levels: z.array(levelSchema).optional(),
  /** repeat the variant sequence this many times, results merged per variant (interleaves A/B over time) */
  rounds: positiveInt.default(1),
  /** default assertions, same syntax as --check */
  checks: z.array(z.string()).default([]),
}).strict().superRefine((config, ctx) => {
  const seen = new Set<string>();
  config.variants.forEach((variant, i) => {
    if (seen.has(variant.name)) ctx.addIssue({ code: 'custom', path: ['variants', i, 'name'], message: `variant name '${variant.name}' appears twice` });
    seen.add(variant.name);
  });
  const levelNames = new Set<string>();
  (config.levels ?? []).forEach((level, i) => {
    if (levelNames.has(level.name)) ctx.addIssue({ code: 'custom', path: ['levels', i, 'name'], message: `level name '${level.name}' appears twice` });
    levelNames.add(level.name);
  });
});
export type BenchConfig = z.infer<typeof benchConfigSchema>;
