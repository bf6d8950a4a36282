/**
 * OpenAI-compatible request schemas (spec b.5) and response shapes. Loose objects: OpenAI clients send fields
 * tslora does not use (user, metadata, ...); SGLang extras (top_k, min_p, repetition_penalty, lora_path, ...)
 * arrive as extra body fields and are validated here.
 */
import { z } from 'zod';
import * as bounds from './sampling-bounds.js';

import { logitBiasSchema } from './logit-bias.js';

const int = () => z.number().int();
const stop = bounds.stopSchema().nullable().optional();

const commonFields = {
  model: z.string({ error: 'model is required (a string, e.g. "base" or "base:adapter")' }),
  temperature: bounds.temperatureSchema().pipe(z.number().max(2, 'must be in [0, 2]')).nullable().optional(),
  top_p: bounds.topPSchema().nullable().optional(),
  n: bounds.nSchema().nullable().optional(),
  stop,
  seed: int().nullable().optional(),
  presence_penalty: bounds.penaltySchema().nullable().optional(),
  logit_bias: logitBiasSchema.nullable().optional(),
  frequency_penalty: bounds.penaltySchema().nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullable().optional() }).nullable().optional(),
  // SGLang / vLLM extras
  top_k: bounds.topKSchema().nullable().optional(),
  min_p: bounds.minPSchema().nullable().optional(),
  repetition_penalty: bounds.repetitionPenaltySchema().nullable().optional(),
  min_tokens: int().min(0).nullable().optional(),
  ignore_eos: z.boolean().nullable().optional(),
  stop_token_ids: bounds.stopTokenIdsSchema().nullable().optional(),
  skip_special_tokens: z.boolean().nullable().optional(),
  lora_path: z.union([z.string(), z.array(z.string().nullable()), z.null()]).optional(),
};

export const completionRequestSchema = z.looseObject({
  ...commonFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), z.array(bounds.tokenIdSchema()).min(1), z.array(z.array(bounds.tokenIdSchema()).min(1)).min(1)], {
    error: 'prompt must be a string, a list of strings, a list of token ids, or a list of token-id lists',
  }),
  max_tokens: int().min(0, 'must be ≥ 0').nullable().optional(),
  logprobs: bounds.topLogprobsSchema().nullable().optional(),
  echo: z.boolean().nullable().optional(),
});
export type CompletionRequest = z.output<typeof completionRequestSchema>;

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
export const chatMessageSchema = z.looseObject({
  role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
});

export const chatRequestSchema = z.looseObject({
  ...commonFields,
  messages: z.array(chatMessageSchema).min(1, 'messages must contain at least one message'),
  max_tokens: int().min(0, 'must be ≥ 0').nullable().optional(),
  max_completion_tokens: int().min(0, 'must be ≥ 0').nullable().optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: bounds.topLogprobsSchema().nullable().optional(),
});
export type ChatRequest = z.output<typeof chatRequestSchema>;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}
