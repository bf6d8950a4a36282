/**
 * POST /generate (spec b.1): request schema with SGLang's field names and defaults, and the response shapes.
 */
import { z } from 'zod';
import * as bounds from './sampling-bounds.js';

import { logitBiasSchema } from './logit-bias.js';

const int = () => z.number().int();

export const samplingParamsSchema = z.strictObject({
  max_new_tokens: int().min(0, 'must be ≥ 0').default(128),
  min_new_tokens: int().min(0, 'must be ≥ 0').default(0),
  temperature: bounds.temperatureSchema().default(1),
  top_p: bounds.topPSchema().default(1),
  top_k: bounds.topKSchema().default(-1),
  min_p: bounds.minPSchema().default(0),
  stop: bounds.stopSchema().optional(),
  stop_token_ids: bounds.stopTokenIdsSchema().optional(),
  ignore_eos: z.boolean().default(false),
  skip_special_tokens: z.boolean().default(true),
  spaces_between_special_tokens: z.boolean().default(true),
  no_stop_trim: z.boolean().default(false),
  frequency_penalty: bounds.penaltySchema().default(0),
  presence_penalty: bounds.penaltySchema().default(0),
  repetition_penalty: bounds.repetitionPenaltySchema().default(1),
  n: bounds.nSchema().default(1),
  sampling_seed: bounds.seedSchema().optional(),
  logit_bias: logitBiasSchema.optional(),
});
export type SamplingParams = z.output<typeof samplingParamsSchema>;

const perItem = <T extends z.ZodType>(item: T) => z.union([item, z.array(item)]);

export const generateRequestSchema = z.looseObject({
  text: z.union([z.string(), z.array(z.string()).min(1, 'must not be empty')]).optional(),
  input_ids: z.union([z.array(bounds.tokenIdSchema()), z.array(z.array(bounds.tokenIdSchema())).min(1, 'must not be empty')]).optional(),
  sampling_params: z.union([samplingParamsSchema, z.array(samplingParamsSchema)]).optional(),
  lora_path: z.union([z.string(), z.array(z.string().nullable()), z.null()]).optional(),
  stream: z.boolean().default(false),
  return_logprob: perItem(z.boolean()).default(false),
  logprob_start_len: perItem(int().min(-1)).default(-1),
  top_logprobs_num: perItem(bounds.topLogprobsSchema()).default(0),
  return_text_in_logprobs: z.boolean().default(false),
  rid: perItem(z.string()).optional(),
});
export type GenerateRequestBody = z.output<typeof generateRequestSchema>;

export type LogprobTriple = [number | null, number, string | null];
export type FinishReason =
  | { type: 'stop'; matched: number | string | null }
  | { type: 'length'; length: number }
  | { type: 'abort'; message: string };

export interface GenerateMetaInfo {
  id: string;
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
  finish_reason: FinishReason | null;
  e2e_latency: number;
  lora_name?: string | null;
  input_token_logprobs?: LogprobTriple[];
  output_token_logprobs?: LogprobTriple[];
  input_top_logprobs?: Array<LogprobTriple[] | null>;
  output_top_logprobs?: LogprobTriple[][];
}

export interface GenerateResponseItem {
  text: string;
  output_ids: number[];
  meta_info: GenerateMetaInfo;
  /** Position in the batch (stream events of a batch). */
  index?: number;
}
