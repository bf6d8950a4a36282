/**
 * Adapter admin routes (spec b.3, b.4): load, unload (+ /v1 aliases), and the tslora pin extension. Every
 * response has the SGLang shape plus error_code; failures are 400 (httpStatusForCode), 401 without a key.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusForCode, toTsloraError, TsloraError } from '../../errors.js';
import { adapterNameProblem, loadAdapterRequestSchema, pinAdapterRequestSchema, unloadAdapterRequestSchema, type AdapterOperationResponse } from '../../protocol/adapters.js';
import { parseBody } from '../../protocol/parse.js';
import { checkAllowedAdapterPath } from '../allowed-dirs.js';
import type { ServerContext } from '../context.js';
import { readJsonBody } from '../http/body.js';
import { sendJson } from '../http/respond.js';

function reply(ctx: ServerContext, res: ServerResponse, error: unknown | null): void {
  const e = error === null ? null : toTsloraError(error);
  const body: AdapterOperationResponse = {
    success: e === null,
    error_message: e === null ? null : e.describe(),
    error_code: e === null ? null : e.code,
    loaded_adapters: ctx.adapters.loadedAdapters(),
    pinned_adapters: ctx.adapters.pinnedAdapters(),
    rid: null,
    http_worker_ipc: null,
  };
  sendJson(res, e === null ? 200 : httpStatusForCode(e.code), body);
}

async function guarded(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, fn: (body: unknown) => Promise<void>): Promise<void> {
  try {
    const body = await readJsonBody(req);
    await fn(body);
    reply(ctx, res, null);
  } catch (error) {
    if (error instanceof TsloraError && error.code === 'unauthorized') throw error;
    reply(ctx, res, error);
  }
}

export function handleLoadAdapter(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return guarded(ctx, req, res, async (raw) => {
    const body = parseBody(loadAdapterRequestSchema, raw);
    const problem = adapterNameProblem(body.lora_name, body.lora_path);
    if (problem) throw new TsloraError('invalid_request', problem, { param: 'lora_name' });
    // With --lora-allowed-dirs the resolved path is loaded, so a symlink swapped after the check cannot redirect it.
    const allowedDirs = ctx.config.loraAllowedDirs;
    const path = allowedDirs.length > 0 ? checkAllowedAdapterPath(body.lora_path, allowedDirs) : body.lora_path;
    await ctx.adapters.load(body.lora_name, path, body.pinned, body.load_inplace === true);
  });
}

export function handleUnloadAdapter(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return guarded(ctx, req, res, async (raw) => {
    const body = parseBody(unloadAdapterRequestSchema, raw);
    await ctx.adapters.unload(body.lora_name);
  });
}

export function handlePinAdapter(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  return guarded(ctx, req, res, async (raw) => {
    const body = parseBody(pinAdapterRequestSchema, raw);
    await ctx.adapters.setPinned(body.lora_name, body.pinned);
  });
}
