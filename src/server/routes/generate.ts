/** POST /generate (spec b.1, b.2, b.6): SGLang's native generation route, single or batch, JSON or SSE. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TsloraError } from '../../errors.js';
import { generateRequestSchema, samplingParamsSchema, type GenerateRequestBody, type SamplingParams } from '../../protocol/generate.js';
import { parseBody } from '../../protocol/parse.js';
import type { ServerContext } from '../context.js';
import { GenerationService, type GenerationItem } from '../generation/service.js';
import type { SampleRun } from '../generation/sample-run.js';
import { readJsonBody } from '../http/body.js';
import { fillSamplingDefaults } from '../sampling-defaults.js';
import { sendJson, SseWriter } from '../http/respond.js';
import { encodePrompt } from '../prompt-limits.js';
import { generateItem } from './generate-response.js';

function pick<T>(value: T | T[], index: number): T {
  return Array.isArray(value) ? value[index] : value;
}

function checkListLength(name: string, value: unknown, batchSize: number, isBatch: boolean): void {
  if (!Array.isArray(value)) return;
  if (!isBatch && name !== 'lora_path') {
    throw new TsloraError('invalid_request', `${name} is a list but the request has a single prompt; send one value`, { param: name });
  }
  if (value.length !== batchSize) {
    const what = name === 'sampling_params' ? 'objects' : 'entries';
    throw new TsloraError('invalid_request', `${name} has ${value.length} ${what} but the batch has ${batchSize} prompt${batchSize === 1 ? '' : 's'}.`, { param: name });
  }
}

/** Turns a validated body into generation items (one per prompt). */
export async function itemsFromGenerateBody(ctx: ServerContext, body: GenerateRequestBody): Promise<{ items: GenerationItem[]; isBatch: boolean }> {
  if ((body.text === undefined) === (body.input_ids === undefined)) {
    throw new TsloraError('invalid_request', 'exactly one of text and input_ids is required', { param: body.text === undefined ? 'text' : 'input_ids' });
  }
  let prompts: number[][];
  let isBatch: boolean;
  if (body.text !== undefined) {
    isBatch = Array.isArray(body.text);
    const texts = isBatch ? (body.text as string[]) : [body.text as string];
    ctx.service.checkFits(texts.length);
    prompts = [];
    for (const [i, t] of texts.entries()) prompts.push(await encodePrompt(ctx, t, isBatch ? `text[${i}]` : 'text'));
  } else {
    const ids = body.input_ids!;
    isBatch = ids.length > 0 && Array.isArray(ids[0]);
    prompts = isBatch ? (ids as number[][]) : [ids as number[]];
  }
  const n = prompts.length;
  checkListLength('sampling_params', body.sampling_params, n, isBatch);
  checkListLength('lora_path', body.lora_path, n, true);
  checkListLength('rid', body.rid, n, isBatch);
  checkListLength('return_logprob', body.return_logprob, n, isBatch);
  checkListLength('logprob_start_len', body.logprob_start_len, n, isBatch);
  checkListLength('top_logprobs_num', body.top_logprobs_num, n, isBatch);
  const defaults = samplingParamsSchema.parse({});
  const items = prompts.map((promptIds, i): GenerationItem => {
    const params: SamplingParams = body.sampling_params === undefined ? defaults : pick(body.sampling_params, i);
    const lora = body.lora_path === undefined || body.lora_path === null ? null : pick(body.lora_path, i);
    return {
      promptIds,
      params,
      adapterName: lora === null || lora === undefined || lora.trim() === '' ? null : lora.trim(),
      clientId: body.rid === undefined ? GenerationService.newClientId() : pick(body.rid, i),
      returnLogprob: pick(body.return_logprob, i),
      logprobStartLen: pick(body.logprob_start_len, i),
      topLogprobsNum: pick(body.top_logprobs_num, i),
      returnTextInLogprobs: body.return_text_in_logprobs,
    };
  });
  return { items, isBatch };
}

export async function handleGenerate(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const raw = await readJsonBody(req);
  const withDefaults = typeof raw === 'object' && raw !== null && !Array.isArray(raw)
    ? { ...(raw as Record<string, unknown>), sampling_params: fillSamplingDefaults((raw as Record<string, unknown>).sampling_params, ctx.samplingDefaults) }
    : raw;
  const body = parseBody(generateRequestSchema, withDefaults);
  const { items, isBatch } = await itemsFromGenerateBody(ctx, body);
  const incremental = ctx.config.incrementalStreamingOutput;
  const interval = Math.max(1, ctx.config.streamInterval);
  const withLogprobs = (run: SampleRun) => items[run.spec.itemIndex].returnLogprob;
  const topLogprobs = (run: SampleRun) => items[run.spec.itemIndex].topLogprobsNum > 0;

  if (!body.stream) {
    const job = await ctx.service.start(items);
    const onClose = () => job.cancel('the client disconnected');
    res.on('close', onClose);
    await job.done;
    res.off('close', onClose);
    const out = job.runs.map((run) =>
      generateItem(run, { text: run.fullText, ids: run.outputIds, final: true, withLogprobs: withLogprobs(run), topLogprobs: topLogprobs(run) }),
    );
    sendJson(res, 200, isBatch || out.length > 1 ? out : out[0]);
    return;
  }

  const sse = new SseWriter(res, ctx.config.maxUnreadStreamBytes, () => ctx.metrics.droppedStreamClient());
  const sentCount = new Map<SampleRun, number>();
  // Logprobs are incremental in every mode (text and ids stay cumulative unless --incremental-streaming-output):
  // re-sending them would make an n × top_logprobs_num stream grow with the square of its length.
  const logprobsSent = new Map<SampleRun, number>();
  const job = await ctx.service.start(items, {
    onProgress: (run, index) => {
      const last = sentCount.get(run) ?? 0;
      if (!run.finished && run.outputIds.length - last < interval) return;
      if (run.finish?.type === 'abort') {
        sse.event({ error: { message: run.finish.message, type: 'invalid_request_error', code: 400, retryable: false }, index });
        return;
      }
      const delta = run.takeDelta();
      if (!run.finished && delta.ids.length === 0 && delta.text === '') return;
      sentCount.set(run, run.outputIds.length);
      const from = logprobsSent.get(run);
      logprobsSent.set(run, run.outputLogprobs.length);
      const event = generateItem(run, {
        text: incremental ? delta.text : run.emittedText,
        ids: incremental ? delta.ids : run.emittedIdList,
        final: run.finished,
        withLogprobs: withLogprobs(run),
        topLogprobs: topLogprobs(run),
        outputLogprobsFrom: from ?? 0,
        inputLogprobs: from === undefined,
      });
      if (isBatch || job.runs.length > 1) event.index = index;
      sse.event(event);
    },
  });
  sse.start();
  const onClose = () => job.cancel('the client disconnected');
  res.on('close', onClose);
  await job.done;
  res.off('close', onClose);
  sse.done();
}
