/**
 * The --variants argument of bench/cuda/side-expand-ab.ts: 'name:KEY=V,KEY=V;name2:…', one variant per name.
 *  - TSLORA_CUDA_* keys: the environment set while that variant's model is constructed (the engine reads its switches
 *    then). No other environment key: it would not be read at model construction and would leak into the others.
 *  - @adapters=DIR: that variant's adapters (a `tslora synth adapters` directory) instead of --adapters;
 *  - @targets=qkv_proj+o_proj: the LoRA target modules of that variant's pool ('+'-separated, among the four the
 *    decode A/B fills), e.g. adapters of one module with only that module targeted: its LoRA cost alone.
 */
import type { LoraTargetModule } from '../../src/engine/model/types.js';

export interface Variant {
  env: Record<string, string>;
  adapters?: string;
  targets?: LoraTargetModule[];
}
export type Variants = Record<string, Variant>;

export const AB_TARGET_MODULES: LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj'];

export function parseVariants(spec: string): Variants {
  const variants: Variants = {};
  for (const part of spec.split(';').filter(Boolean)) {
    const colon = part.indexOf(':');
    const name = colon < 0 ? part : part.slice(0, colon);
    const refuse = (why: string) =>
      new Error(`--variants: expected 'name:TSLORA_CUDA_X=V,@adapters=DIR,@targets=a+b;name2:...' with distinct names (${why}), got '${part}'`);
    if (!name || name in variants) throw refuse(name ? 'a repeated name' : 'a missing name');
    const variant: Variant = { env: {} };
    for (const kv of (colon < 0 ? '' : part.slice(colon + 1)).split(',').filter(Boolean)) {
      const eq = kv.indexOf('=');
      if (eq < 0) throw refuse(`'${kv}' has no value`);
      const key = kv.slice(0, eq), value = kv.slice(eq + 1);
      if (key === '@adapters') {
        if (!value) throw refuse('an empty @adapters');
        variant.adapters = value;
      } else if (key === '@targets') {
        const targets = value.split('+');
        const unknown = targets.filter((t) => !AB_TARGET_MODULES.includes(t as LoraTargetModule));
        if (unknown.length > 0 || new Set(targets).size !== targets.length)
          throw refuse(`@targets takes distinct names among ${AB_TARGET_MODULES.join(', ')}`);
        variant.targets = targets as LoraTargetModule[];
      } else if (key.startsWith('TSLORA_CUDA_')) {
        variant.env[key] = value;
      } else {
        throw refuse(`'${key}' is neither a TSLORA_CUDA_* switch nor @adapters / @targets`);
      }
    }
    variants[name] = variant;
  }
  if (Object.keys(variants).length < 2) throw new Error(`--variants: an A/B needs at least two variants, got '${spec}'`);
  return variants;
}

/**
 * Runs `construct` with exactly `variant.env` laid over the environment this process started with: every key any
 * variant sets is first put back to its value before the A/B (or removed), so a variant never inherits a switch an
 * earlier one set. (Session 24 found that it did: "default", constructed after "before", ran with before's "=0"
 * switches, and the A/B compared before with itself.)
 */
export async function constructUnderVariantEnv<T>(
  variants: Variants, name: string, construct: () => Promise<T> | T, env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  const keys = new Set(Object.values(variants).flatMap((v) => Object.keys(v.env)));
  const saved = new Map([...keys].map((key) => [key, env[key]] as const));
  const restore = () => {
    for (const [key, value] of saved) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
  };
  restore();
  Object.assign(env, variants[name].env);
  try {
    return await construct();
  } finally {
    restore();
  }
}
