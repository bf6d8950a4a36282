/**
 * The node:http request handler: routing, the --api-key check (every route but /health), and error replies in
 * the route's style (native or OpenAI). Status codes come from httpStatusForCode, in respond.ts only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { TsloraError } from '../errors.js';
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
  'GET /v1/models': (ctx, _req, res) => handleModels(ctx, res),
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

export function createRequestHandler(ctx: ServerContext) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const style: ErrorStyle = path.startsWith('/v1/') ? 'openai' : 'native';
    let handler: Handler | undefined = ROUTES[`${req.method} ${path}`];
    let param = '';
    if (!handler && req.method === 'GET' && path.startsWith('/v1/models/')) {
      param = decodeURIComponent(path.slice('/v1/models/'.length));
      handler = (c, _req, r, id) => handleModel(c, r, id);
    }
    const run = async () => {
      if (!handler) {
        const known = Object.keys(ROUTES).some((r) => r.endsWith(` ${path}`));
        throw new TsloraError('route_not_found', known ? `${req.method} is not allowed on ${path}` : `no route ${req.method} ${path}`);
      }
      if (path !== '/health' && !authorized(ctx, req)) {
        throw new TsloraError('unauthorized', 'missing or wrong API key; send the header Authorization: Bearer <key> (the server was started with --api-key)');
      }
      await handler(ctx, req, res, param);
    };
    run().catch((error: unknown) => {
      if (res.headersSent) {
        if (!res.writableEnded) res.end();
        return;
      }
      sendError(res, error, style);
    });
  };
}
