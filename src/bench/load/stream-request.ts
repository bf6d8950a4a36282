/**
 * Sends one planned request as a streaming HTTP request and times it: TTFT is the arrival of the first event
 * that carries a token, ITL every gap between token-carrying events, E2E send → last byte.
 * Each event is timed when the socket read that completed it returns (performance.now(), µs resolution). Events that
 * complete in the same read cannot be told apart in time: such gaps are counted (itlSameRead), so reports can say
 * that the ITL is below what the client could resolve instead of printing 0.
 * Native POST /generate (cumulative SSE, SGLang style) or OpenAI POST /v1/completions.
 */
import { performance } from 'node:perf_hooks';
import { request, type Dispatcher } from 'undici';
import type { PlannedRequest } from '../workload/plan.js';
import { SseEvents } from './sse.js';

export interface Target {
  baseUrl: string;
  dispatcher: Dispatcher;
  apiKey: string | null;
  api: 'generate' | 'completions';
  requestTimeoutMs: number;
  /** aborts every request in flight (Ctrl-C): their timings get INTERRUPTED as error and are not measurements */
  signal?: AbortSignal;
}

/** The error of a request cut short by Target.signal. */
export const INTERRUPTED = 'interrupted';

export interface StreamTiming {
  /** performance.now() at send */
  sentAt: number;
  ttftMs: number | null;
  e2eMs: number;
  itlMs: number[];
  /** How many of itlMs are gaps between events completed by one socket read (0 ms by construction). */
  itlSameRead: number;
  outputTokens: number;
  error: string | null;
}

export interface StreamListener {
  /** called when an event brings `newTokens` more output tokens */
  onTokens?(newTokens: number): void;
  onFirstToken?(ttftMs: number): void;
}

function requestBody(api: Target['api'], planned: PlannedRequest): Record<string, unknown> {
  if (api === 'completions') {
    return {
      model: planned.adapter ? `base:${planned.adapter}` : 'base:',
      prompt: planned.inputIds,
      max_tokens: planned.outputTokens,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    };
  }
  return {
    input_ids: planned.inputIds,
    sampling_params: { max_new_tokens: planned.outputTokens, temperature: 0, ignore_eos: true },
    lora_path: planned.adapter,
    stream: true,
    rid: `bench-${planned.index}-${Math.random().toString(36).slice(2, 8)}`,
  };
}

/** Cumulative tokens so far according to one parsed event, or null if it carries no count. */
function tokensInEvent(api: Target['api'], event: Record<string, unknown>, previous: number): number | null {
  if (api === 'completions') {
    const usage = event.usage as { completion_tokens?: number } | undefined;
    if (usage && typeof usage.completion_tokens === 'number') return usage.completion_tokens;
    const choices = event.choices as { text?: string }[] | undefined;
    return choices && choices.some((c) => c.text) ? previous + 1 : null;
  }
  const meta = event.meta_info as { completion_tokens?: number } | undefined;
  if (meta && typeof meta.completion_tokens === 'number') return meta.completion_tokens;
  const ids = event.output_ids;
  return Array.isArray(ids) ? ids.length : null;
}

function errorText(event: Record<string, unknown>): string | null {
  const error = event.error as { message?: string } | string | undefined;
  if (error === undefined || error === null) return null;
  return typeof error === 'string' ? error : (error.message ?? JSON.stringify(error));
}

export async function sendStreaming(target: Target, planned: PlannedRequest, listener: StreamListener = {}): Promise<StreamTiming> {
  const path = target.api === 'completions' ? '/v1/completions' : '/generate';
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
  const body = JSON.stringify(requestBody(target.api, planned));
  const sentAt = performance.now();
  const timing: StreamTiming = { sentAt, ttftMs: null, e2eMs: 0, itlMs: [], itlSameRead: 0, outputTokens: 0, error: null };
  let lastTokenAt = 0;
  let lastTokenRead = -1;
  try {
    const response = await request(`${target.baseUrl}${path}`, {
      method: 'POST',
      headers,
      body,
      dispatcher: target.dispatcher,
      signal: target.signal ? AbortSignal.any([target.signal, AbortSignal.timeout(target.requestTimeoutMs)]) : AbortSignal.timeout(target.requestTimeoutMs),
      headersTimeout: target.requestTimeoutMs,
      bodyTimeout: target.requestTimeoutMs,
    });
    if (response.statusCode !== 200) {
      const text = await response.body.text();
      let message = text.slice(0, 300);
      try {
        message = errorText(JSON.parse(text) as Record<string, unknown>) ?? message;
      } catch {
        // not JSON: keep the raw text
      }
      timing.error = `HTTP ${response.statusCode}: ${message}`;
    } else {
      const events = new SseEvents();
      const decoder = new TextDecoder();
      let read = 0;
      const handle = (data: string, now: number) => {
        if (data === '[DONE]' || timing.error) return;
        let event: Record<string, unknown>;
        try {
          event = JSON.parse(data) as Record<string, unknown>;
        } catch {
          timing.error = `unparsable SSE event: ${data.slice(0, 120)}`;
          return;
        }
        const err = errorText(event);
        if (err) {
          timing.error = err;
          return;
        }
        const tokens = tokensInEvent(target.api, event, timing.outputTokens);
        if (tokens === null || tokens <= timing.outputTokens) return;
        if (timing.ttftMs === null) {
          timing.ttftMs = now - sentAt;
          listener.onFirstToken?.(timing.ttftMs);
        } else {
          timing.itlMs.push(now - lastTokenAt);
          if (read === lastTokenRead) timing.itlSameRead++;
        }
        lastTokenRead = read;
        listener.onTokens?.(tokens - timing.outputTokens);
        timing.outputTokens = tokens;
        lastTokenAt = now;
      };
      for await (const chunk of response.body) {
        const now = performance.now();
        read++;
        for (const data of events.push(decoder.decode(chunk as Buffer, { stream: true }))) handle(data, now);
      }
      for (const data of events.flush()) handle(data, performance.now());
      if (!timing.error && timing.outputTokens === 0) timing.error = 'stream ended without any output token';
    }
  } catch (error) {
    if (target.signal?.aborted) timing.error = INTERRUPTED;
    else timing.error = (error as Error).name === 'TimeoutError' ? `timed out after ${target.requestTimeoutMs} ms` : (error as Error).message;
  }
  timing.e2eMs = performance.now() - sentAt;
  return timing;
}
