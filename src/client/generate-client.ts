/**
 * GenerateClient: POST /generate (spec b.1) of a running server, as one JSON answer or as server-sent events
 * (b.6). A 400 becomes a TsloraError with the server's error_code (not_loaded, invalid_request, ...) and message,
 * so the CLI's exit codes follow from exitCodeForCode like those of the adapter commands.
 */
import { TsloraError } from '../errors.js';
import type { GenerateResponseItem } from '../protocol/generate.js';
import { categorizeAdapterError, type TsloraClientOptions } from './adapter-client.js';
import { errorMessageOf, requestEvents, requestJson, type HttpTarget, type JsonResponse } from './http.js';

/** One SSE event of /generate: a (partial) item, or an error of one item of the batch. */
export type GenerateEvent =
  | { kind: 'item'; index: number; item: GenerateResponseItem }
  | { kind: 'error'; index: number; message: string };

function rejection({ status, body }: JsonResponse): TsloraError {
  const message = errorMessageOf(body) ?? `HTTP ${status} without an error message`;
  const nested = (body as { error?: { code?: unknown } } | null)?.error;
  const errorCode = (body as { error_code?: unknown } | null)?.error_code ?? (typeof nested === 'object' && nested ? nested.code : undefined);
  return new TsloraError(categorizeAdapterError(errorCode, message), message);
}

function parseEvent(data: string): GenerateEvent {
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(data) as Record<string, unknown>;
  } catch {
    throw new TsloraError('server_error', `the server sent an event that is not JSON: ${data.slice(0, 200)}`);
  }
  const index = typeof parsed.index === 'number' ? parsed.index : 0;
  if (parsed.error !== undefined) return { kind: 'error', index, message: errorMessageOf(parsed) ?? JSON.stringify(parsed.error) };
  return { kind: 'item', index, item: parsed as unknown as GenerateResponseItem };
}

export class GenerateClient {
  private readonly target: HttpTarget;

  constructor(options: TsloraClientOptions) {
    this.target = { url: options.url.replace(/\/+$/, ''), apiKey: options.apiKey ?? null, timeoutMs: options.timeoutMs ?? 120_000 };
  }

  /** Sends a batch (text is a list) and returns the server's array, in prompt order. */
  async generate(body: { text: string[] } & Record<string, unknown>): Promise<GenerateResponseItem[]> {
    const response = await requestJson(this.target, 'POST', '/generate', { ...body, stream: false });
    if (response.status < 200 || response.status >= 300) throw rejection(response);
    const items = Array.isArray(response.body) ? response.body : [response.body];
    if (items.length !== body.text.length || items.some((i) => i === null || typeof i !== 'object')) {
      throw new TsloraError('server_error', `POST /generate answered ${JSON.stringify(response.body).slice(0, 200)} for ${body.text.length} prompts.`);
    }
    return items as GenerateResponseItem[];
  }

  /** Sends a batch with stream: true and calls onEvent for every event until the server's [DONE]. */
  async generateStream(body: { text: string[] } & Record<string, unknown>, onEvent: (event: GenerateEvent) => void): Promise<void> {
    const refused = await requestEvents(this.target, '/generate', { ...body, stream: true }, (data) => onEvent(parseEvent(data)));
    if (refused) throw rejection(refused);
  }

  /**
   * Whether streamed /generate events carry only the new text (the server's --incremental-streaming-output)
   * rather than SGLang's default cumulative text. Read from GET /get_server_info; false when it does not say.
   */
  async streamsIncrementally(): Promise<boolean> {
    try {
      const { status, body } = await requestJson(this.target, 'GET', '/get_server_info');
      const info = (status === 200 && body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>;
      return (info.incremental_streaming_output ?? info.incrementalStreamingOutput) === true;
    } catch (error) {
      if (error instanceof TsloraError && error.code === 'route_not_found') return false;
      throw error;
    }
  }
}
