/**
 * OpenAI-compatible request schemas (spec b.5) and response shapes. Loose objects: OpenAI clients send fields
 * tslora does not use (user, metadata, ...); SGLang extras (top_k, min_p, repetition_penalty, lora_path, ...)
 * arrive as extra body fields and are validated here.
 */
import { z } from 'zod';

import { logitBiasSchema } from './logit-bias.js';

const int = () => z.number().int();
const stop = z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional();

const commonFields = {
  model: z.string({ error: 'model is required (a string, e.g. "base" or "base:adapter")' }),
  temperature: z.number().min(0, 'must be in [0, 2]').max(2, 'must be in [0, 2]').nullable().optional(),
  top_p: z.number().gt(0, 'must be in (0, 1]').max(1, 'must be in (0, 1]').nullable().optional(),
  n: int().min(1, 'must be ≥ 1').max(64, 'must be ≤ 64').nullable().optional(),
  stop,
  seed: int().nullable().optional(),
  presence_penalty: z.number().min(-2, 'must be in [-2, 2]').max(2, 'must be in [-2, 2]').nullable().optional(),
  logit_bias: logitBiasSchema.nullable().optional(),
  frequency_penalty: z.number().min(-2, 'must be in [-2, 2]').max(2, 'must be in [-2, 2]').nullable().optional(),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullable().optional() }).nullable().optional(),
  // SGLang / vLLM extras
  top_k: int().refine((v) => v === -1 || v >= 1, 'must be -1 (off) or ≥ 1').nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  repetition_penalty: z.number().gt(0).max(2).nullable().optional(),
  min_tokens: int().min(0).nullable().optional(),
  ignore_eos: z.boolean().nullable().optional(),
  stop_token_ids: z.array(int().min(0)).nullable().optional(),
  skip_special_tokens: z.boolean().nullable().optional(),
  lora_path: z.union([z.string(), z.array(z.string().nullable()), z.null()]).optional(),
};

export const completionRequestSchema = z.looseObject({
  ...commonFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), z.array(int().min(0)).min(1), z.array(z.array(int().min(0)).min(1)).min(1)], {
    error: 'prompt must be a string, a list of strings, a list of token ids, or a list of token-id lists',
  }),
  max_tokens: int().min(0, 'must be ≥ 0').nullable().optional(),
  logprobs: int().min(0).max(20).nullable().optional(),
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
  top_logprobs: int().min(0).max(20).nullable().optional(),
});
export type ChatRequest = z.output<typeof chatRequestSchema>;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}
