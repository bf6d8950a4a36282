/** POST /v1/completions and /v1/chat/completions (spec b.5, b.6), translated to generation items. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TsloraError } from '../../errors.js';
import { chatRequestSchema, completionRequestSchema, type ChatRequest, type CompletionRequest } from '../../protocol/openai.js';
import { parseBody } from '../../protocol/parse.js';
import type { ServerContext } from '../context.js';
import { GenerationService, type GenerationItem, type Job, type JobHandlers } from '../generation/service.js';
import type { SampleRun } from '../generation/sample-run.js';
import { readJsonBody } from '../http/body.js';
import { sendJson, SseWriter } from '../http/respond.js';
import { encodePrompt } from '../prompt-limits.js';
import { adapterForPrompt, adapterFromModel, openAiFinishReason, openAiId, samplingFromOpenAi, usageOf } from './openai-common.js';

async function completionPrompts(ctx: ServerContext, prompt: CompletionRequest['prompt']): Promise<number[][]> {
  if (typeof prompt === 'string') return [await encodePrompt(ctx, prompt, 'prompt')];
  if (prompt.length > 0 && typeof prompt[0] === 'number') return [prompt as number[]];
  if (prompt.length > 0 && Array.isArray(prompt[0])) return prompt as number[][];
  ctx.service.checkFits(prompt.length);
  const out: number[][] = [];
  for (const [i, p] of (prompt as string[]).entries()) out.push(await encodePrompt(ctx, p, `prompt[${i}]`));
  return out;
}

function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { type?: string; text?: string }) => (p.type === 'text' && p.text ? p.text : '')).join('');
  return '';
}

/**
 * OpenAI `logprobs` of a completion choice for output tokens [from, to): `text_offset` counts characters of the
 * choice's whole text, so it starts at `startOffset` (the echoed prompt's length, or the text streamed before).
 */
function completionLogprobs(run: SampleRun, tokenText: (id: number) => string, startOffset = 0, from = 0, to = run.outputLogprobs.length) {
  if (run.outputLogprobs.length === 0 || from >= to) return null;
  let offset = startOffset;
  const tokens: string[] = [];
  const offsets: number[] = [];
  for (const [, id] of run.outputLogprobs.slice(from, to)) {
    const t = tokenText(id);
    tokens.push(t);
    offsets.push(offset);
    offset += t.length;
  }
  return {
    tokens,
    token_logprobs: run.outputLogprobs.slice(from, to).map(([lp]) => lp),
    top_logprobs: run.outputTopLogprobs.length ? run.outputTopLogprobs.slice(from, to).map((top) => Object.fromEntries(top.map(([lp, id]) => [tokenText(id), lp]))) : null,
    text_offset: offsets,
  };
}

/** OpenAI `logprobs` of a chat choice for output tokens [from, to). */
function chatLogprobs(run: SampleRun, tokenText: (id: number) => string, from = 0, to = run.outputLogprobs.length) {
  if (run.outputLogprobs.length === 0 || from >= to) return null;
  const entry = (lp: number | null, id: number) => {
    const token = tokenText(id);
    return { token, logprob: lp ?? -9999, bytes: [...Buffer.from(token, 'utf8')] };
  };
  return {
    content: run.outputLogprobs
      .slice(from, to)
      .map(([lp, id], i) => ({ ...entry(lp, id), top_logprobs: (run.outputTopLogprobs[from + i] ?? []).map(([tlp, tid]) => entry(tlp, tid)) })),
  };
}

async function runOpenAi(
  ctx: ServerContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: CompletionRequest | ChatRequest,
  prompts: number[][],
  kind: 'completion' | 'chat',
): Promise<void> {
  const items: GenerationItem[] = prompts.map((promptIds, i) => {
    let maxTokens: number;
    if (kind === 'chat') {
      const chat = body as ChatRequest;
      maxTokens = chat.max_completion_tokens ?? chat.max_tokens ?? Math.max(1, ctx.contextLength - promptIds.length);
    } else {
      maxTokens = (body as CompletionRequest).max_tokens ?? 16;
    }
    const wantLogprobs = kind === 'chat' ? (body as ChatRequest).logprobs === true : (body as CompletionRequest).logprobs != null;
    const top = kind === 'chat' ? (body as ChatRequest).top_logprobs ?? 0 : (body as CompletionRequest).logprobs ?? 0;
    return {
      promptIds,
      params: samplingFromOpenAi(body, maxTokens, ctx.samplingDefaults),
      adapterName: adapterForPrompt(ctx, body, i, prompts.length),
      clientId: GenerationService.newClientId(),
      returnLogprob: wantLogprobs,
      logprobStartLen: -1,
      topLogprobsNum: wantLogprobs ? top : 0,
      returnTextInLogprobs: false,
    };
  });
  const id = openAiId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
  const created = Math.floor(Date.now() / 1000);
  const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
  const echo = kind === 'completion' && (body as CompletionRequest).echo === true;
  const promptText = (i: number) => (echo ? ctx.tokenizer.decode(prompts[i], true) : '');
  const tokenText = (tid: number) => ctx.tokenizer.tokenText(tid);
  const promptLengths = prompts.map((p) => p.length);
  // An adapter named in `model` overrides lora_path, so a resolution error is about `model` (b.5 error bodies).
  const namedByModel = adapterFromModel(ctx, body.model) !== undefined;
  const startJob = async (handlers: JobHandlers = {}): Promise<Job> => {
    try {
      return await ctx.service.start(items, handlers);
    } catch (err) {
      if (namedByModel && err instanceof TsloraError && err.param === 'lora_path') {
        throw new TsloraError(err.code, err.message, { hint: err.hint, param: 'model', cause: err.cause });
      }
      // The service names the native field of the prompt; here the prompt is `prompt` or `messages`.
      if (err instanceof TsloraError && (err.param === 'text' || err.param === 'input_ids')) {
        throw new TsloraError(err.code, err.message, { hint: err.hint, param: kind === 'chat' ? 'messages' : 'prompt', cause: err.cause });
      }
      throw err;
    }
  };

  if (!body.stream) {
    const job = await startJob();
    const onClose = () => job.cancel('the client disconnected');
    res.on('close', onClose);
    await job.done;
    res.off('close', onClose);
    const choices = job.runs.map((run, index) =>
      kind === 'chat'
        ? { index, message: { role: 'assistant', content: run.fullText }, logprobs: chatLogprobs(run, tokenText), finish_reason: openAiFinishReason(run) }
        : { index, text: promptText(run.spec.itemIndex) + run.fullText, logprobs: completionLogprobs(run, tokenText, promptText(run.spec.itemIndex).length), finish_reason: openAiFinishReason(run) },
    );
    sendJson(res, 200, { id, object, created, model: body.model, choices, usage: usageOf(job.runs, promptLengths) });
    return;
  }

  const sse = new SseWriter(res, ctx.config.maxUnreadStreamBytes, () => ctx.metrics.droppedStreamClient());
  const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const roleSent = new Set<number>();
  // Per choice: output tokens whose logprobs were sent, and characters of text sent (the next text_offset).
  const logprobsSent = new Map<number, number>();
  const textSent = new Map<number, number>();
  /** Logprobs of the tokens not yet reported; every chunk that carries text or the finish reason takes them. */
  const pendingLogprobs = (run: SampleRun, index: number) => {
    const from = logprobsSent.get(index) ?? 0;
    const to = run.outputLogprobs.length;
    logprobsSent.set(index, to);
    return kind === 'chat' ? chatLogprobs(run, tokenText, from, to) : completionLogprobs(run, tokenText, textSent.get(index) ?? 0, from, to);
  };
  let job: Job | null = null;
  const emit = (run: SampleRun, index: number) => {
    const delta = run.takeDelta();
    const finish = openAiFinishReason(run);
    if (kind === 'chat') {
      if (!roleSent.has(index)) {
        roleSent.add(index);
        sse.event({ id, object: chunkObject, created, model: body.model, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
      }
      if (delta.text !== '') sse.event({ id, object: chunkObject, created, model: body.model, choices: [{ index, delta: { content: delta.text }, logprobs: pendingLogprobs(run, index), finish_reason: null }] });
      if (finish) sse.event({ id, object: chunkObject, created, model: body.model, choices: [{ index, delta: {}, logprobs: pendingLogprobs(run, index), finish_reason: finish }] });
    } else {
      const prefix = !roleSent.has(index) ? promptText(run.spec.itemIndex) : '';
      roleSent.add(index);
      if (delta.text !== '' || prefix !== '' || finish) {
        const text = prefix + delta.text;
        textSent.set(index, (textSent.get(index) ?? 0) + prefix.length);
        const logprobs = pendingLogprobs(run, index);
        textSent.set(index, (textSent.get(index) ?? 0) + delta.text.length);
        sse.event({ id, object: chunkObject, created, model: body.model, choices: [{ index, text, logprobs, finish_reason: finish }] });
      }
    }
  };
  job = await startJob({ onProgress: emit });
  sse.start();
  const onClose = () => job!.cancel('the client disconnected');
  res.on('close', onClose);
  await job.done;
  res.off('close', onClose);
  const aborted = job.runs.find((r) => r.finish?.type === 'abort');
  if (aborted && aborted.finish?.type === 'abort' && sse.open) {
    sse.error(new TsloraError('internal', aborted.finish.message));
    return;
  }
  if (body.stream_options?.include_usage) {
    sse.event({ id, object: chunkObject, created, model: body.model, choices: [], usage: usageOf(job.runs, promptLengths) });
  }
  sse.done();
}

export async function handleCompletions(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = parseBody(completionRequestSchema, await readJsonBody(req));
  await runOpenAi(ctx, req, res, body, await completionPrompts(ctx, body.prompt), 'completion');
}

export async function handleChatCompletions(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = parseBody(chatRequestSchema, await readJsonBody(req));
  if (!ctx.renderChat) {
    throw new TsloraError('invalid_request', 'this model has no chat_template in tokenizer_config.json; use /v1/completions', { param: 'messages' });
  }
  const text = ctx.renderChat(body.messages.map((m) => ({ role: m.role, content: messageText(m.content) })));
  await runOpenAi(ctx, req, res, body, [await encodePrompt(ctx, text, 'messages', false)], 'chat');
}
