/**
 * PEFT adapter_config.json: parsing, module-name normalisation (spec a.4), target_modules resolution against a
 * model (list / "all-linear" / regex, as PEFT matches them) and rank_pattern/alpha_pattern lookup (spec d.2, d.3).
 */
import { RE2JS } from 're2js';
import { TsloraError } from '../../errors.js';
import type { LoraModuleName, LoraTargetModule, ModelSpec } from './types.js';

export interface AdapterConfig {
  peftType: string;
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  /** A list of names, or a string: "all-linear"/"all", or a regular expression matched against full module names. */
  targetModules: string[] | string | null;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  modulesToSave: string[];
  bias: string;
  raw: Record<string, unknown>;
}

/** Linear projections of one decoder layer, with their un-fused PEFT names and where they sit. */
const LAYER_MODULES: Array<{ name: LoraModuleName; path: string }> = [
  { name: 'q_proj', path: 'self_attn.q_proj' },
  { name: 'k_proj', path: 'self_attn.k_proj' },
  { name: 'v_proj', path: 'self_attn.v_proj' },
  { name: 'o_proj', path: 'self_attn.o_proj' },
  { name: 'gate_proj', path: 'mlp.gate_proj' },
  { name: 'up_proj', path: 'mlp.up_proj' },
  { name: 'down_proj', path: 'mlp.down_proj' },
];

const FUSED: Record<LoraModuleName, LoraTargetModule> = {
  q_proj: 'qkv_proj',
  k_proj: 'qkv_proj',
  v_proj: 'qkv_proj',
  o_proj: 'o_proj',
  gate_proj: 'gate_up_proj',
  up_proj: 'gate_up_proj',
  down_proj: 'down_proj',
  embed_tokens: 'embed_tokens',
  lm_head: 'lm_head',
};

/** SGLang's aliases (spec a.4 step 1) plus the fused names themselves. */
const ALIASES: Record<string, LoraTargetModule> = {
  qkv_proj: 'qkv_proj',
  gate_up_proj: 'gate_up_proj',
  embeddings: 'embed_tokens',
  word_embeddings: 'embed_tokens',
  vocab_emb: 'embed_tokens',
  output: 'lm_head',
  unembed_tokens: 'lm_head',
};

export const ALL_LINEAR_TARGETS: LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];
/** Canonical order of target modules (the order the pool and messages list them in). */
export const TARGET_MODULE_ORDER: LoraTargetModule[] = [...ALL_LINEAR_TARGETS, 'embed_tokens', 'lm_head'];

/** Normalises a (possibly dotted) module name to its fused target name: "model.layers.0.self_attn.q_proj" → qkv_proj. */
export function normalizeModuleName(name: string): LoraTargetModule {
  const last = name.split('.').pop() ?? name;
  const fused = (FUSED as Record<string, LoraTargetModule>)[last] ?? ALIASES[last];
  if (fused === undefined) {
    throw new TsloraError('incompatible', `LoRA target module '${name}' is not a projection tslora can adapt`, {
      hint: `Supported modules: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (or qkv_proj, gate_up_proj), embed_tokens, lm_head.`,
    });
  }
  return fused;
}

/** The un-fused module name of a PEFT module path's last component, or null if it is not one tslora knows. */
export function peftModuleName(last: string): LoraModuleName | null {
  if (last in FUSED) return last as LoraModuleName;
  const alias = ALIASES[last];
  if (alias === 'embed_tokens' || alias === 'lm_head') return alias;
  return null;
}

export function sortTargets(modules: Iterable<LoraTargetModule>): LoraTargetModule[] {
  const set = new Set(modules);
  return TARGET_MODULE_ORDER.filter((m) => set.has(m));
}

/** Full module names of a model as PEFT sees them (relative to the CausalLM): model.layers.0.self_attn.q_proj, … */
export function modelModulePaths(spec: ModelSpec): Array<{ path: string; name: LoraModuleName; layer: number }> {
  const paths: Array<{ path: string; name: LoraModuleName; layer: number }> = [{ path: 'model.embed_tokens', name: 'embed_tokens', layer: -1 }];
  for (let layer = 0; layer < spec.numLayers; layer++) {
    for (const m of LAYER_MODULES) paths.push({ path: `model.layers.${layer}.${m.path}`, name: m.name, layer });
  }
  paths.push({ path: 'lm_head', name: 'lm_head', layer: -1 });
  return paths;
}

/** Bounds on the patterns an adapter_config.json may carry (PEFT's real ones are tens of characters). */
export const MAX_PATTERN_CHARS = 1024;
export const MAX_PATTERN_KEYS = 4096;

/**
 * target_modules / rank_pattern / alpha_pattern keys are regular expressions from a file a client may name. They
 * run on RE2JS (linear-time automata, no backtracking), so a pattern like (.*.*.*)*X cannot pin the thread;
 * compiled patterns are cached by source.
 */
const compiled = new Map<string, RE2JS>();

function compileRegex(source: string, what: string, anchored: (s: string) => string): RE2JS {
  const key = anchored(source);
  const cached = compiled.get(key);
  if (cached) return cached;
  if (source.length > MAX_PATTERN_CHARS) {
    throw new TsloraError('unsupported_adapter', `adapter_config.json ${what} is ${source.length} characters long; at most ${MAX_PATTERN_CHARS} are accepted`);
  }
  let regex: RE2JS;
  try {
    regex = RE2JS.compile(key);
  } catch (error) {
    throw new TsloraError('unsupported_adapter', `adapter_config.json ${what} is not a regular expression tslora can use (RE2 syntax: no look-around or back-references)`, {
      cause: error,
      hint: 'List the module names explicitly in target_modules instead.',
    });
  }
  if (compiled.size >= MAX_PATTERN_KEYS) compiled.clear();
  compiled.set(key, regex);
  return regex;
}

/** PEFT's check_target_module_exists for one full module path. */
export function targetsModule(targetModules: AdapterConfig['targetModules'], path: string, name: LoraModuleName): boolean {
  if (targetModules === null) return false;
  if (typeof targetModules === 'string') {
    if (targetModules === 'all-linear' || targetModules === 'all') return name !== 'lm_head' && name !== 'embed_tokens';
    return compileRegex(targetModules, 'target_modules', (s) => `^(?:${s})$`).matches(path);
  }
  return targetModules.some((t) => path === t || path.endsWith(`.${t}`));
}

/** The normalised set an adapter's target_modules resolves to against a model (spec a.4 steps 1 and 5). */
export function adapterTargetSet(config: Pick<AdapterConfig, 'targetModules'>, spec: ModelSpec): LoraTargetModule[] {
  const targets = config.targetModules;
  if (targets === null) return [];
  if (typeof targets === 'string') {
    return sortTargets(modelModulePaths(spec).filter((m) => targetsModule(targets, m.path, m.name)).map((m) => FUSED[m.name]));
  }
  return sortTargets(targets.map(normalizeModuleName));
}

/** PEFT's get_pattern_key: the first pattern key that matches the end of the module path at a dot boundary. */
export function patternValue(pattern: Record<string, number>, modulePath: string): number | undefined {
  for (const [key, value] of Object.entries(pattern)) {
    if (compileRegex(key, 'pattern key', (s) => `^(?:.*\\.)?(?:${s})$`).matches(modulePath)) return value;
  }
  return undefined;
}

/** σ_m and r_m of one module: rank_pattern/alpha_pattern override r/lora_alpha; rsLoRA divides by √r. */
export function moduleScaling(config: AdapterConfig, modulePath: string): { rank: number; alpha: number; scaling: number } {
  const rank = patternValue(config.rankPattern, modulePath) ?? config.r;
  const alpha = patternValue(config.alphaPattern, modulePath) ?? config.loraAlpha;
  return { rank, alpha, scaling: config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

function corruptConfig(detail: string): TsloraError {
  return new TsloraError('unsupported_adapter', `corrupt adapter file: adapter_config.json ${detail}`, {
    hint: 'Re-save the adapter with PEFT (save_pretrained).',
  });
}

function numberRecord(value: unknown, field: string): Record<string, number> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw corruptConfig(`${field} is not an object`);
  if (Object.keys(value).length > MAX_PATTERN_KEYS) throw corruptConfig(`${field} has more than ${MAX_PATTERN_KEYS} keys`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw corruptConfig(`${field}['${key}'] is not a positive number`);
  }
  return value as Record<string, number>;
}

/** Parses adapter_config.json text (structure only; feature checks live in the adapter reader). */
export function parseAdapterConfig(text: string): AdapterConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw corruptConfig('is not valid JSON');
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw corruptConfig('is not a JSON object');
  const c = raw as Record<string, unknown>;
  const r = c.r ?? 8;
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 1) throw corruptConfig(`has r = ${JSON.stringify(r)}; r must be an integer ≥ 1`);
  const loraAlpha = c.lora_alpha ?? 8;
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha)) throw corruptConfig(`has lora_alpha = ${JSON.stringify(loraAlpha)}`);
  const tm = c.target_modules ?? null;
  if (tm !== null && typeof tm !== 'string' && !(Array.isArray(tm) && tm.every((t) => typeof t === 'string'))) {
    throw corruptConfig('target_modules is neither a list of names nor a string');
  }
  if (Array.isArray(tm) && tm.length > MAX_PATTERN_KEYS) throw corruptConfig(`target_modules lists more than ${MAX_PATTERN_KEYS} names`);
  const mts = c.modules_to_save ?? null;
  return {
    peftType: typeof c.peft_type === 'string' ? c.peft_type : 'LORA',
    r,
    loraAlpha,
    useRslora: c.use_rslora === true,
    targetModules: tm as string[] | string | null,
    rankPattern: numberRecord(c.rank_pattern, 'rank_pattern'),
    alphaPattern: numberRecord(c.alpha_pattern, 'alpha_pattern'),
    modulesToSave: Array.isArray(mts) ? mts.filter((m): m is string => typeof m === 'string') : [],
    bias: typeof c.bias === 'string' ? c.bias : 'none',
    raw: c,
  };
}
