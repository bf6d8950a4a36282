/**
 * logit_bias, as OpenAI and SGLang take it: a map from token id (a decimal string key, JSON objects having only
 * string keys) to a bias in [-100, 100] added to that token's logit before sampling (after the penalties). -100
 * in practice bans a token, +100 in practice forces it.
 */
import { z } from 'zod';

export const LOGIT_BIAS_MAX = 100;
export const LOGIT_BIAS_MAX_ENTRIES = 1024;

export const logitBiasSchema = z
  .record(
    z.string().regex(/^(0|[1-9]\d{0,9})$/, 'keys must be token ids (non-negative integers written as strings)'),
    z.number().min(-LOGIT_BIAS_MAX, `must be in [-${LOGIT_BIAS_MAX}, ${LOGIT_BIAS_MAX}]`).max(LOGIT_BIAS_MAX, `must be in [-${LOGIT_BIAS_MAX}, ${LOGIT_BIAS_MAX}]`),
  )
  .refine((m) => Object.keys(m).length <= LOGIT_BIAS_MAX_ENTRIES, `must have at most ${LOGIT_BIAS_MAX_ENTRIES} entries`);

/** [token id, bias] pairs of a validated logit_bias map, zero biases dropped (ids are distinct: map keys). */
export function logitBiasEntries(bias: Record<string, number> | null | undefined): Array<[number, number]> {
  if (!bias) return [];
  return Object.entries(bias)
    .map(([id, value]): [number, number] => [Number(id), value])
    .filter(([, value]) => value !== 0);
}
