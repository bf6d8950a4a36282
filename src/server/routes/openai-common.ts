/** Shared pieces of the OpenAI-compatible routes (spec b.5): model → adapter, sampling translation, usage. */
import { randomBytes } from 'node:crypto';
import { TsloraError } from '../../errors.js';
import { samplingParamsSchema, type SamplingParams } from '../../protocol/generate.js';
import type { CompletionRequest, ChatRequest, Usage } from '../../protocol/openai.js';
import type { ServerContext } from '../context.js';
import type { SampleRun } from '../generation/sample-run.js';
import type { ModelSamplingDefaults } from '../sampling-defaults.js';

/**
 * `model` → adapter (b.5 table): split at the first colon, both parts trimmed, an empty adapter part = base; a
 * bare name is an adapter when one of that name is registered or known, or --lora-resolver-dir holds it (vLLM
 * style), else the base model.
 * undefined = the model field names no adapter (the body's lora_path applies).
 */
export function adapterFromModel(ctx: ServerContext, model: string): string | null | undefined {
  const colon = model.indexOf(':');
  if (colon >= 0) {
    const adapter = model.slice(colon + 1).trim();
    return adapter === '' ? null : adapter;
  }
  const bare = model.trim();
  if (bare !== '' && (ctx.adapters.registry.get(bare) || ctx.adapters.registry.knownPath(bare) || ctx.adapterDirectory?.pathFor(bare))) return bare;
  return undefined;
}

export function adapterForPrompt(ctx: ServerContext, body: CompletionRequest | ChatRequest, index: number, count: number): string | null {
  const fromModel = adapterFromModel(ctx, body.model);
  if (fromModel !== undefined) return fromModel;
  const lora = body.lora_path;
  if (lora === undefined || lora === null) return null;
  if (Array.isArray(lora)) {
    if (lora.length !== count) {
      throw new TsloraError('invalid_request', `lora_path has ${lora.length} entries but the request has ${count} prompt${count === 1 ? '' : 's'}.`, { param: 'lora_path' });
    }
    const v = lora[index];
    return v === null || v.trim() === '' ? null : v.trim();
  }
  return lora.trim() === '' ? null : lora.trim();
}

/** The request's sampling fields over the model's defaults (generation_config.json) over the API defaults. */
export function samplingFromOpenAi(body: CompletionRequest | ChatRequest, maxTokens: number, modelDefaults: ModelSamplingDefaults = {}): SamplingParams {
  const params = { ...samplingParamsSchema.parse({}), ...modelDefaults };
  params.max_new_tokens = maxTokens;
  if (body.temperature != null) params.temperature = body.temperature;
  if (body.top_p != null) params.top_p = body.top_p;
  if (body.top_k != null) params.top_k = body.top_k;
  if (body.min_p != null) params.min_p = body.min_p;
  if (body.n != null) params.n = body.n;
  if (body.stop != null) params.stop = body.stop;
  if (body.seed != null) params.sampling_seed = Math.abs(body.seed) >>> 0;
  if (body.presence_penalty != null) params.presence_penalty = body.presence_penalty;
  if (body.frequency_penalty != null) params.frequency_penalty = body.frequency_penalty;
  if (body.repetition_penalty != null) params.repetition_penalty = body.repetition_penalty;
  if (body.min_tokens != null) params.min_new_tokens = Math.min(body.min_tokens, maxTokens);
  if (body.ignore_eos != null) params.ignore_eos = body.ignore_eos;
  if (body.stop_token_ids != null) params.stop_token_ids = body.stop_token_ids;
  if (body.logit_bias != null) params.logit_bias = body.logit_bias;
  if (body.skip_special_tokens != null) params.skip_special_tokens = body.skip_special_tokens;
  return params;
}

export function openAiFinishReason(run: SampleRun): string | null {
  const f = run.finish;
  if (!f) return null;
  if (f.type === 'length') return 'length';
  if (f.type === 'stop') return 'stop';
  return 'abort';
}

export function usageOf(runs: SampleRun[], promptTokensCounted: number[]): Usage {
  const prompt = promptTokensCounted.reduce((a, b) => a + b, 0);
  const completion = runs.reduce((n, r) => n + r.outputIds.length, 0);
  const cached = runs.reduce((n, r) => n + r.cachedTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
}

export function openAiId(prefix: string): string {
  return `${prefix}-${randomBytes(12).toString('hex')}`;
}
