/** Builds /generate response objects (b.1) from finished or in-progress samples. */
import type { GenerateResponseItem } from '../../protocol/generate.js';
import type { SampleRun } from '../generation/sample-run.js';

/**
 * outputLogprobsFrom: stream events carry only the output logprobs from this index on (the ones not sent yet), and
 * inputLogprobs: false leaves out the prompt logprobs an earlier event already carried.
 */
export function generateItem(
  run: SampleRun,
  options: { text: string; ids: number[]; final: boolean; withLogprobs: boolean; topLogprobs: boolean; outputLogprobsFrom?: number; inputLogprobs?: boolean },
): GenerateResponseItem {
  const end = run.finishedAtMs ?? performance.now();
  const meta: GenerateResponseItem['meta_info'] = {
    id: run.spec.clientId,
    prompt_tokens: run.spec.promptIds.length,
    completion_tokens: run.outputIds.length,
    cached_tokens: run.cachedTokens,
    finish_reason: options.final ? run.finish : null,
    e2e_latency: (end - run.arrivedAtMs) / 1000,
    lora_name: run.spec.adapterName,
  };
  if (options.withLogprobs) {
    const from = options.outputLogprobsFrom ?? 0;
    const input = options.inputLogprobs === false ? [] : run.inputLogprobs ?? [];
    meta.input_token_logprobs = input;
    meta.output_token_logprobs = run.outputLogprobs.slice(from);
    if (options.topLogprobs) {
      meta.input_top_logprobs = input.map((_, i) => run.inputTopLogprobs?.[i] ?? null);
      meta.output_top_logprobs = run.outputTopLogprobs.slice(from);
    }
  }
  return { text: options.text, output_ids: options.ids, meta_info: meta };
}
