/**
 * The --variants argument of bench/cuda/side-expand-ab.ts: 'name:TSLORA_CUDA_X=V,TSLORA_CUDA_Y=W;name2:…', one
 * environment per variant, each set while that variant's model is constructed (the engine reads its switches then).
 * Only TSLORA_CUDA_* keys: anything else would not be read at model construction and would leak into the others.
 */
export type Variants = Record<string, Record<string, string>>;

export function parseVariants(spec: string): Variants {
  const variants: Variants = {};
  for (const part of spec.split(';').filter(Boolean)) {
    const colon = part.indexOf(':');
    const name = colon < 0 ? part : part.slice(0, colon);
    const pairs = (colon < 0 ? '' : part.slice(colon + 1)).split(',').filter(Boolean).map((kv) => {
      const eq = kv.indexOf('=');
      return eq < 0 ? [kv, undefined] : [kv.slice(0, eq), kv.slice(eq + 1)];
    });
    if (!name || name in variants || pairs.some(([k, v]) => !k?.startsWith('TSLORA_CUDA_') || v === undefined))
      throw new Error(`--variants: expected 'name:TSLORA_CUDA_X=V,...;name2:...' with distinct names, got '${part}'`);
    variants[name] = Object.fromEntries(pairs as Array<[string, string]>);
  }
  if (Object.keys(variants).length < 2) throw new Error(`--variants: an A/B needs at least two variants, got '${spec}'`);
  return variants;
}
