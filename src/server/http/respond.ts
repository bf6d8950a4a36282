/**
 * Writing responses: JSON bodies, the two error shapes (native {error:{message}} and OpenAI), and the single
 * place where an error code becomes an HTTP status (httpStatusForCode).
 */
import type { ServerResponse } from 'node:http';
import { httpStatusForCode, toTsloraError, type TsloraError } from '../../errors.js';

export type ErrorStyle = 'native' | 'openai';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  404: 'not_found_error',
  503: 'service_unavailable',
  500: 'internal_server_error',
};

export function errorBody(error: TsloraError, style: ErrorStyle): { status: number; body: unknown } {
  const status = httpStatusForCode(error.code);
  const message = error.describe();
  if (style === 'native') return { status, body: { error: { message, code: error.code } } };
  const type = OPENAI_TYPES[status] ?? 'invalid_request_error';
  return {
    status,
    body: { object: 'error', message, type, param: error.param ?? null, code: status, error: { message, type, param: error.param ?? null, code: error.code } },
  };
}

export function sendError(res: ServerResponse, error: unknown, style: ErrorStyle): void {
  const e = toTsloraError(error);
  const { status, body } = errorBody(e, style);
  const headers: Record<string, string> = {};
  if (status === 503) headers['retry-after'] = '1';
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  sendJson(res, status, body, headers);
}

/** Server-sent events on one response. */
export class SseWriter {
  private readonly res: ServerResponse;
  private readonly maxUnreadBytes: number;
  private readonly onDrop: () => void;
  private started = false;

  /**
   * A client that leaves more than maxUnreadBytes (--max-unread-stream-bytes) in the server's buffer is
   * disconnected and onDrop called: one that never reads would otherwise hold every event in memory. The engine
   * keeps generating for the others, so the producer is not paused.
   */
  constructor(res: ServerResponse, maxUnreadBytes: number, onDrop: () => void) {
    this.res = res;
    this.maxUnreadBytes = maxUnreadBytes;
    this.onDrop = onDrop;
  }

  get open(): boolean {
    return !this.res.destroyed && !this.res.writableEnded;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    this.res.flushHeaders();
  }

  event(data: unknown): void {
    this.start();
    if (!this.open) return;
    this.res.write(`data: ${JSON.stringify(data)}\n\n`);
    if (this.res.writableLength > this.maxUnreadBytes) {
      this.onDrop();
      this.res.destroy();
    }
  }

  /** The spec's in-stream error event (b.6) followed by [DONE]. */
  error(error: unknown): void {
    const e = toTsloraError(error);
    const status = httpStatusForCode(e.code);
    this.event({ error: { message: e.describe(), type: OPENAI_TYPES[status] ?? 'invalid_request_error', code: status, retryable: status === 503 } });
    this.done();
  }

  done(): void {
    this.start();
    if (this.open) {
      this.res.write('data: [DONE]\n\n');
      this.res.end();
    }
  }
}
