/**
 * One JSON request to a tslora server over undici, with the failure families the CLI maps to exit codes:
 * unreachable (connection refused, DNS, timeout), unauthorized (401), route_not_found (404), server errors (5xx).
 * Non-2xx bodies are returned to the caller for 400s so that adapter errors keep their error_code.
 */
import { createParser } from 'eventsource-parser';
import { request } from 'undici';
import { TsloraError } from '../errors.js';

export interface HttpTarget {
  /** Base URL without a trailing slash. */
  url: string;
  apiKey: string | null;
  timeoutMs: number;
}

export interface JsonResponse {
  status: number;
  body: unknown;
}

function describeNetworkError(error: unknown): string {
  const err = error as Error & { code?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code;
  return code ? `${code}${err.message && !err.message.includes(code) ? ` (${err.message})` : ''}` : err.message;
}

/** Message of an error body: {error: {message}}, {message}, {error_message} or plain text. */
export function errorMessageOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim() || undefined;
  if (body === null || typeof body !== 'object') return undefined;
  const record = body as Record<string, unknown>;
  const nested = record.error as Record<string, unknown> | string | undefined;
  if (typeof nested === 'string') return nested;
  if (nested && typeof nested.message === 'string') return nested.message;
  if (typeof record.error_message === 'string') return record.error_message;
  if (typeof record.message === 'string') return record.message;
  if (typeof record.detail === 'string') return record.detail;
  return undefined;
}

/** The failure of a request that produced no response (refused, DNS, timeout) as an 'unreachable' error. */
export function networkFailure(target: HttpTarget, where: string, error: unknown): TsloraError {
  const name = (error as Error).name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new TsloraError('unreachable', `no answer from ${where} within ${target.timeoutMs / 1000} s.`, {
      hint: 'The server may be busy (an unload waits for running requests); raise --timeout or check the server log.',
      cause: error,
    });
  }
  return new TsloraError('unreachable', `cannot reach the tslora server at ${target.url}: ${describeNetworkError(error)}.`, {
    hint: "Start it with 'tslora serve', or point --url (or TSLORA_URL) at the running server.",
    cause: error,
  });
}

function parseBodyText(text: string): unknown {
  try {
    return text === '' ? null : JSON.parse(text);
  } catch {
    return text; // keep the text: an error page of a proxy, or a server that is not tslora
  }
}

/** Throws for the statuses every caller treats alike: 401/403, 404 and 5xx. 2xx and other 4xx return. */
function checkStatus(target: HttpTarget, method: string, path: string, status: number, body: unknown): void {
  if (status === 401 || status === 403) {
    throw new TsloraError('unauthorized', `the server at ${target.url} refused the request (HTTP ${status}): ${errorMessageOf(body) ?? 'unauthorized'}.`, {
      hint: target.apiKey
        ? 'The API key does not match the server\'s --api-key; pass the right one with --api-key or TSLORA_API_KEY.'
        : 'The server requires an API key: pass --api-key KEY or set TSLORA_API_KEY.',
    });
  }
  if (status === 404) {
    throw new TsloraError('route_not_found', `the server at ${target.url} has no route ${method} ${path} (HTTP 404).`, {
      hint: 'Check that --url points at a tslora or SGLang server.',
    });
  }
  if (status >= 500) {
    throw new TsloraError('server_error', `the server at ${target.url} failed on ${method} ${path} (HTTP ${status}): ${errorMessageOf(body) ?? 'no details'}.`, {
      hint: status === 503 ? 'The server is overloaded or shutting down; retry later.' : 'See the server log for details.',
    });
  }
}

function headersFor(target: HttpTarget, hasPayload: boolean, accept: string): Record<string, string> {
  const headers: Record<string, string> = { accept };
  if (hasPayload) headers['content-type'] = 'application/json';
  if (target.apiKey) headers.authorization = `Bearer ${target.apiKey}`;
  return headers;
}

export async function requestJson(target: HttpTarget, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<JsonResponse> {
  const where = `${target.url}${path}`;
  let status: number;
  let text: string;
  try {
    const response = await request(where, {
      method,
      headers: headersFor(target, payload !== undefined, 'application/json'),
      body: payload === undefined ? undefined : JSON.stringify(payload),
      signal: AbortSignal.timeout(target.timeoutMs),
    });
    status = response.statusCode;
    text = await response.body.text();
  } catch (error) {
    throw networkFailure(target, where, error);
  }
  const body = parseBodyText(text);
  checkStatus(target, method, path, status, body);
  return { status, body };
}

/**
 * POST with a JSON payload whose 2xx answer is server-sent events: calls onData with each event's data (the
 * text after `data:`), up to `[DONE]`. A non-2xx answer is returned like requestJson's (status and parsed body).
 */
export async function requestEvents(
  target: HttpTarget,
  path: string,
  payload: unknown,
  onData: (data: string) => void,
): Promise<JsonResponse | null> {
  const where = `${target.url}${path}`;
  try {
    const response = await request(where, {
      method: 'POST',
      headers: headersFor(target, true, 'text/event-stream'),
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(target.timeoutMs),
    });
    if (response.statusCode < 200 || response.statusCode >= 300) {
      const body = parseBodyText(await response.body.text());
      checkStatus(target, 'POST', path, response.statusCode, body);
      return { status: response.statusCode, body };
    }
    // eventsource-parser handles line endings, multi-line data and comments; `[DONE]` ends the stream early.
    let done = false;
    const parser = createParser({
      onEvent: (event) => {
        if (done) return;
        if (event.data === '[DONE]') done = true;
        else if (event.data !== '') onData(event.data);
      },
    });
    const decoder = new TextDecoder();
    for await (const chunk of response.body) {
      parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
      if (done) break;
    }
    return null;
  } catch (error) {
    if (error instanceof TsloraError) throw error;
    throw networkFailure(target, where, error);
  }
}
