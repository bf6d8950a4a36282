/**
 * The node:http request handler: routing, the --api-key check (every route but /health), and error replies in
 * the route's style (native or OpenAI). Status codes come from httpStatusForCode, in respond.ts only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { TsloraError } from '../errors.js';
import { isLoopbackHost } from './allowed-dirs.js';
import type { ServerContext } from './context.js';
import { sendError, type ErrorStyle } from './http/respond.js';
import { handleLoadAdapter, handlePinAdapter, handleUnloadAdapter } from './routes/adapters.js';
import { handleGenerate } from './routes/generate.js';
import { handleHealth, handleHealthGenerate, handleMetrics, handleModel, handleModelInfo, handleServerInfo, handleModels } from './routes/info.js';
import { handleChatCompletions, handleCompletions } from './routes/openai.js';

type Handler = (ctx: ServerContext, req: IncomingMessage, res: ServerResponse, param: string) => Promise<void> | void;

const ROUTES: Record<string, Handler> = {
  'POST /generate': handleGenerate,
  'POST /v1/completions': handleCompletions,
  'POST /v1/chat/completions': handleChatCompletions,
  'GET /v1/models': (ctx, req, res) => handleModels(ctx, res, showsPaths(ctx, req)),
  'POST /load_lora_adapter': handleLoadAdapter,
  'POST /v1/load_lora_adapter': handleLoadAdapter,
  'POST /unload_lora_adapter': handleUnloadAdapter,
  'POST /v1/unload_lora_adapter': handleUnloadAdapter,
  'POST /pin_lora_adapter': handlePinAdapter,
  'GET /health': (ctx, _req, res) => handleHealth(ctx, res),
  'GET /health_generate': (ctx, _req, res) => handleHealthGenerate(ctx, res),
  'GET /get_model_info': (ctx, _req, res) => handleModelInfo(ctx, res),
  'GET /get_server_info': (ctx, _req, res) => handleServerInfo(ctx, res),
  'GET /metrics': (ctx, _req, res) => {
    // SGLang mounts its Prometheus endpoint only with --enable-metrics; without it the route does not exist.
    if (!ctx.config.enableMetrics) throw new TsloraError('route_not_found', 'GET /metrics is off: start the server with --enable-metrics to serve Prometheus metrics');
    return handleMetrics(ctx, res);
  },
};

function authorized(ctx: ServerContext, req: IncomingMessage): boolean {
  const key = ctx.config.apiKey;
  if (!key) return true;
  const header = req.headers.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  if (!match) return false;
  const given = Buffer.from(match[1].trim());
  const expected = Buffer.from(key);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** POST bodies are JSON: anything else (a browser's cross-site text/plain form post, say) gets 415. */
function requireJson(req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new TsloraError('unsupported_media_type', `POST bodies must be sent with Content-Type: application/json (got ${type === '' ? 'none' : `'${type.slice(0, 100)}'`})`);
  }
}

function routeOf(req: IncomingMessage): { path: string; handler: Handler | undefined; param: string } {
  const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
  const key = `${req.method} ${path}`;
  const handler = Object.hasOwn(ROUTES, key) ? ROUTES[key] : undefined;
  if (handler || req.method !== 'GET' || !path.startsWith('/v1/models/')) return { path, handler, param: '' };
  let param: string;
  try {
    param = decodeURIComponent(path.slice('/v1/models/'.length));
  } catch {
    throw new TsloraError('invalid_request', `the model id in ${path.slice(0, 200)} is not valid percent-encoding`, { param: 'model' });
  }
  return { path, handler: (c, r, res, id) => handleModel(c, res, id, showsPaths(c, r)), param };
}

/**
 * The error boundary: everything a request can make the server do (routing, auth, body parsing, validation, the
 * handler) runs inside one try; whatever is thrown becomes an error response, never a process crash.
 */
export function createRequestHandler(ctx: ServerContext) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    // A client that resets mid-body or mid-stream must not surface as an unhandled 'error' event.
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    let style: ErrorStyle = (req.url ?? '').startsWith('/v1/') ? 'openai' : 'native';
    const run = async () => {
      const { path, handler, param } = routeOf(req);
      style = path.startsWith('/v1/') ? 'openai' : 'native';
      if (!handler) {
        const known = Object.keys(ROUTES).some((r) => r.endsWith(` ${path}`));
        throw new TsloraError('route_not_found', known ? `${req.method} is not allowed on ${path}` : `no route ${req.method} ${path.slice(0, 200)}`);
      }
      if (path !== '/health' && !authorized(ctx, req)) {
        throw new TsloraError('unauthorized', 'missing or wrong API key; send the header Authorization: Bearer <key> (the server was started with --api-key)');
      }
      if (req.method === 'POST') requireJson(req);
      await handler(ctx, req, res, param);
    };
    run().catch((error: unknown) => {
      try {
        if (res.headersSent) {
          if (!res.writableEnded) res.end();
          return;
        }
        sendError(res, error, style);
      } catch {
        res.destroy();
      }
    });
  };
}

/**
 * Whether /v1/models may show adapter paths (`root`) to this caller: with --api-key every caller that got this
 * far is authenticated; without one, only callers on this machine (a path tells a remote stranger about the disk).
 */
export function showsPaths(ctx: ServerContext, req: IncomingMessage): boolean {
  return ctx.config.apiKey !== null || isLoopbackHost(req.socket.remoteAddress ?? '');
}
