/**
 * LoRA target-module names (spec a.4 step 1): a dotted name is reduced to its last component, then folded to the
 * fused module the device pool uses (q/k/v_proj → qkv_proj, gate/up_proj → gate_up_proj) and embedding/output
 * aliases are mapped to embed_tokens/lm_head. Rules 7 and 8 of spec a.2 check the --lora-target-modules value.
 */
import { TsloraError } from '../errors.js';
import type { LoraTargetModule } from '../engine/model/types.js';

/** Canonical order of the fused modules (used for stable, readable output). */
export const FUSED_TARGET_MODULES: readonly LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'];

/** The names rule 8 lists as allowed, in the spec's order. */
export const ACCEPTED_MODULE_NAMES: readonly string[] = [
  'q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'qkv_proj', 'gate_up_proj', 'embed_tokens', 'lm_head',
];

const TO_FUSED: Readonly<Record<string, LoraTargetModule>> = {
  q_proj: 'qkv_proj',
  k_proj: 'qkv_proj',
  v_proj: 'qkv_proj',
  qkv_proj: 'qkv_proj',
  o_proj: 'o_proj',
  gate_proj: 'gate_up_proj',
  up_proj: 'gate_up_proj',
  gate_up_proj: 'gate_up_proj',
  down_proj: 'down_proj',
  embed_tokens: 'embed_tokens',
  embeddings: 'embed_tokens',
  word_embeddings: 'embed_tokens',
  vocab_emb: 'embed_tokens',
  lm_head: 'lm_head',
  output: 'lm_head',
  unembed_tokens: 'lm_head',
};

/** `model.layers.0.self_attn.q_proj` → `qkv_proj`; undefined for a name that is no known module. */
export function normalizeTargetModule(name: string): LoraTargetModule | undefined {
  const last = name.trim().split('.').pop() ?? '';
  return TO_FUSED[last];
}

/** Sorts and de-duplicates fused names into the canonical order. */
export function canonicalModuleSet(modules: Iterable<LoraTargetModule>): LoraTargetModule[] {
  const present = new Set(modules);
  return FUSED_TARGET_MODULES.filter((m) => present.has(m));
}

/**
 * Parses the --lora-target-modules value (entries may also be comma-separated): 'all', or the fused set.
 * Throws rule 7 ('all' with other names) and rule 8 (unknown name) usage errors.
 */
export function parseTargetModules(entries: readonly unknown[]): LoraTargetModule[] | 'all' {
  const names = entries
    .flatMap((entry) => String(entry).split(','))
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.includes('all')) {
    if (names.length > 1) {
      throw new TsloraError('usage', `'all' must be the only value of --lora-target-modules (got: ${names.join(', ')}).`, {
        hint: "Give either 'all' or a list of module names.",
        param: 'loraTargetModules',
      });
    }
    return 'all';
  }
  const fused: LoraTargetModule[] = [];
  for (const name of names) {
    const module = normalizeTargetModule(name);
    if (!module) {
      throw new TsloraError(
        'usage',
        `unknown LoRA target module '${name}'; expected some of ${ACCEPTED_MODULE_NAMES.join(' ')}, or all.`,
        { hint: 'Use the projection names of the model (as in adapter_config.json target_modules).', param: 'loraTargetModules' },
      );
    }
    fused.push(module);
  }
  return canonicalModuleSet(fused);
}
