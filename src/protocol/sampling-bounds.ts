/**
 * The one set of sampling-parameter bounds, shared by /generate (sampling_params) and the OpenAI routes. They are
 * the engine's own checks (native step-checks.cpp, which sees float32 values) plus SGLang/vLLM's documented
 * ranges, so a value the engine would reject is a 400 at the door: 1e308 is finite as a double but infinite as a
 * float32, and 5e-324 is positive as a double but 0 as a float32.
 */
import { z } from 'zod';

/** Largest number of stop strings, and characters in one (SGLang has no bound; OpenAI allows 4). */
export const MAX_STOP_STRINGS = 64;
export const MAX_STOP_STRING_CHARS = 1024;
export const MAX_STOP_TOKEN_IDS = 1024;
/** Samples per prompt (SGLang/OpenAI n) and top logprobs per position (OpenAI's 20). */
export const MAX_N = 64;
export const MAX_TOP_LOGPROBS = 20;
const INT32_MAX = 2 ** 31 - 1;

const float32 = (v: number) => Number.isFinite(Math.fround(v));
/** A double the engine sees as a finite float32; `positive` also needs it to stay > 0 after rounding. */
const engineFloat = () => z.number().refine(float32, 'must be a finite number representable as a float32');

export const temperatureSchema = () => engineFloat().pipe(z.number().min(0, 'must be ≥ 0 (0 = greedy)'));
export const topPSchema = () =>
  engineFloat().pipe(z.number().max(1, 'must be in (0, 1]').refine((v) => Math.fround(v) > 0, 'must be in (0, 1] (it is 0 as a float32)'));
export const minPSchema = () => engineFloat().pipe(z.number().min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]'));
export const topKSchema = () => z.number().int().max(INT32_MAX, `must be ≤ ${INT32_MAX}`).refine((v) => v === -1 || v >= 1, 'must be -1 (off) or ≥ 1');
export const penaltySchema = () => z.number().min(-2, 'must be in [-2, 2]').max(2, 'must be in [-2, 2]');
export const repetitionPenaltySchema = () =>
  engineFloat().pipe(z.number().max(2, 'must be in (0, 2]').refine((v) => Math.fround(v) > 0, 'must be in (0, 2] (it is 0 as a float32)'));
export const tokenIdSchema = () => z.number().int().min(0).max(INT32_MAX);
export const stopStringSchema = () => z.string().max(MAX_STOP_STRING_CHARS, `a stop string has at most ${MAX_STOP_STRING_CHARS} characters`);
export const stopSchema = () => z.union([stopStringSchema(), z.array(stopStringSchema()).max(MAX_STOP_STRINGS, `at most ${MAX_STOP_STRINGS} stop strings`)]);
export const stopTokenIdsSchema = () => z.array(tokenIdSchema()).max(MAX_STOP_TOKEN_IDS, `at most ${MAX_STOP_TOKEN_IDS} stop token ids`);
export const nSchema = () => z.number().int().min(1, 'must be ≥ 1').max(MAX_N, `must be ≤ ${MAX_N}`);
export const topLogprobsSchema = () => z.number().int().min(0).max(MAX_TOP_LOGPROBS, `must be ≤ ${MAX_TOP_LOGPROBS}`);
export const seedSchema = () => z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
