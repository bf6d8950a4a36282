/**
 * The option table of `tslora generate` (one POST /generate batch against a running server) and the function that
 * turns prompts plus option values into the request body. Connection and output options are the adapter
 * commands' table (adapterOptions), so --url, --api-key, --timeout and --json behave the same everywhere.
 */
import { TsloraError } from '../errors.js';
import { samplingParamsSchema } from '../protocol/generate.js';
import { HELP_POINTER } from './coerce.js';
import { layerValues } from './layers.js';
import { defineOptions } from './option-names.js';

export const GENERATE_GROUPS = { request: 'Request', sampling: 'Sampling' } as const;

/** `--lora` values that mean "no adapter" for that prompt. */
export const BASE_LORA_NAMES: readonly string[] = ['base', '-'];

export const generateOptions = defineOptions([
  {
    key: 'lora', type: 'list', repeatable: true, valueName: 'NAME', env: false, group: GENERATE_GROUPS.request,
    help: "Adapter for the prompts: the i-th --lora applies to the i-th prompt, a single --lora to all of them; 'base' or '-' = the base model.",
  },
  { key: 'stream', type: 'boolean', defaultValue: false, env: false, negatable: false, group: GENERATE_GROUPS.request, help: 'Print the output as it is generated (server-sent events); with several prompts, each answer is printed as soon as it is complete.' },
  { key: 'maxNewTokens', type: 'int', valueName: 'N', defaultValue: 128, env: false, group: GENERATE_GROUPS.sampling, help: 'Maximum number of tokens to generate per prompt.' },
  { key: 'temperature', type: 'float', valueName: 'T', defaultValue: 0, env: false, group: GENERATE_GROUPS.sampling, help: 'Sampling temperature; 0 = greedy (the same answer every time).' },
  { key: 'topP', type: 'float', valueName: 'P', env: false, group: GENERATE_GROUPS.sampling, help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches P, in (0, 1]. Default: the server's (1)." },
  { key: 'topK', type: 'int', valueName: 'K', env: false, group: GENERATE_GROUPS.sampling, help: "Sample among the K most likely tokens; -1 = off. Default: the server's (-1)." },
  { key: 'seed', type: 'int', valueName: 'SEED', env: false, group: GENERATE_GROUPS.sampling, help: "Seed for sampling (sent as sampling_seed). Default: the server's --random-seed." },
  { key: 'stop', type: 'list', repeatable: true, valueName: 'STR', env: false, group: GENERATE_GROUPS.sampling, help: 'Stop generating when the output contains STR (not included in the text).' },
]);

export interface GenerateSamplingParams {
  max_new_tokens: number;
  temperature: number;
  top_p?: number;
  top_k?: number;
  sampling_seed?: number;
  stop?: string[];
}

/** The POST /generate body: always a batch (text is a list), so the server answers with an array. */
export interface GenerateRequestPlan {
  body: { text: string[]; lora_path?: Array<string | null>; sampling_params: GenerateSamplingParams; stream?: true };
  /** Adapter of each prompt, null = base (for the human output). */
  adapters: Array<string | null>;
  stream: boolean;
}

function usage(message: string, hint: string, param: string): TsloraError {
  return new TsloraError('usage', message, { hint, param });
}

/**
 * Maps the --lora values onto the prompts: none = base for all, one = that adapter for all, one per prompt = in
 * order. More values than prompts, or several but fewer than the prompts, is a usage error (ambiguous).
 */
export function adaptersForPrompts(loras: readonly string[], promptCount: number): Array<string | null> {
  const named = loras.map((name) => (BASE_LORA_NAMES.includes(name.trim()) || name.trim() === '' ? null : name.trim()));
  if (named.length === 0) return Array.from({ length: promptCount }, () => null);
  if (named.length === 1) return Array.from({ length: promptCount }, () => named[0]);
  if (named.length !== promptCount) {
    const prompts = `${promptCount} prompt${promptCount === 1 ? '' : 's'}`;
    throw usage(
      `--lora was given ${named.length} times but there ${promptCount === 1 ? 'is' : 'are'} ${prompts}.`,
      "Give one --lora for all prompts, or exactly one per prompt in order ('--lora base' for the base model).",
      'lora',
    );
  }
  return named;
}

/** Body field → [flag, option key] of the sampling values `tslora generate` sends. */
const SAMPLING_FLAGS: Record<string, [string, string]> = {
  max_new_tokens: ['max-new-tokens', 'maxNewTokens'],
  temperature: ['temperature', 'temperature'],
  top_p: ['top-p', 'topP'],
  top_k: ['top-k', 'topK'],
  sampling_seed: ['seed', 'seed'],
};

/**
 * Checks the sampling values against the server's own bounds (the protocol schema) before sending, so that every
 * out-of-range flag is the same usage error (exit 2) instead of some being a server rejection (exit 5).
 */
function checkSamplingBounds(sampling: GenerateSamplingParams): void {
  const fields = samplingParamsSchema.shape;
  for (const [field, [flag, key]] of Object.entries(SAMPLING_FLAGS)) {
    const v = (sampling as unknown as Record<string, number | undefined>)[field];
    if (v === undefined) continue;
    const checked = fields[field as keyof typeof fields].safeParse(v);
    if (!checked.success) {
      const reason = checked.error.issues[0]?.message ?? '';
      const rule = reason.startsWith('must') ? reason : `is out of range${reason ? `: ${reason}` : ''}`;
      throw usage(`--${flag} ${rule} (got ${v}).`, `${HELP_POINTER} for what --${flag} accepts.`, key);
    }
  }
}

export function resolveGenerateRequest(prompts: readonly string[], argvValues: Record<string, unknown>): GenerateRequestPlan {
  if (prompts.length === 0) {
    throw usage('no prompt given.', 'Pass prompts as arguments (tslora generate "12+30=" --lora add) or one per line on stdin.', 'prompt');
  }
  const values = layerValues(generateOptions, argvValues, {});
  const value = <T>(key: string) => values.get(key)?.value as T;
  const adapters = adaptersForPrompts(value<string[] | undefined>('lora') ?? [], prompts.length);
  const sampling: GenerateSamplingParams = { max_new_tokens: value<number>('maxNewTokens'), temperature: value<number>('temperature') };
  const optional: Array<[string, keyof GenerateSamplingParams]> = [['topP', 'top_p'], ['topK', 'top_k'], ['seed', 'sampling_seed']];
  for (const [key, field] of optional) {
    const v = value<number | undefined>(key);
    if (v !== undefined) (sampling as unknown as Record<string, number>)[field] = v;
  }
  checkSamplingBounds(sampling);
  const stop = value<string[] | undefined>('stop');
  if (stop !== undefined && stop.length > 0) sampling.stop = stop;
  const stream = value<boolean>('stream');
  const body: GenerateRequestPlan['body'] = { text: [...prompts], sampling_params: sampling };
  if (adapters.some((a) => a !== null)) body.lora_path = adapters;
  if (stream) body.stream = true;
  return { body, adapters, stream };
}
