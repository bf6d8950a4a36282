/** GET /v1/models, /v1/models/{id}, /health, /health_generate, /get_model_info, /get_server_info, /metrics. */
import type { ServerResponse } from 'node:http';
import { TsloraError } from '../../errors.js';
import type { ModelCard } from '../../protocol/adapters.js';
import { samplingParamsSchema } from '../../protocol/generate.js';
import type { ServerContext } from '../context.js';
import { sendJson } from '../http/respond.js';

function cards(ctx: ServerContext, showPaths: boolean): ModelCard[] {
  const base: ModelCard = {
    id: ctx.servedModelName,
    object: 'model',
    created: ctx.createdAtS,
    owned_by: 'tslora',
    root: ctx.servedModelName,
    parent: null,
    max_model_len: ctx.contextLength,
  };
  const adapters = ctx.adapters.registry.list().map(
    (e): ModelCard => ({ id: e.name, object: 'model', created: ctx.createdAtS, owned_by: 'tslora', root: showPaths ? e.path : null, parent: ctx.servedModelName, max_model_len: null, pinned: e.pinned }),
  );
  return [base, ...adapters];
}

/** showPaths: adapter cards carry `root` = the adapter path (else null); see showsPaths in app.ts. */
export function handleModels(ctx: ServerContext, res: ServerResponse, showPaths: boolean): void {
  sendJson(res, 200, { object: 'list', data: cards(ctx, showPaths) });
}

/**
 * The card of a model id as the completion routes read it: a listed id, or `base:adapter` (the adapter's card
 * under the id asked for; `base:` alone is the base model), where base must be the served model name.
 */
function cardFor(ctx: ServerContext, id: string, showPaths: boolean): ModelCard | undefined {
  const all = cards(ctx, showPaths);
  const listed = all.find((c) => c.id === id);
  if (listed) return listed;
  const colon = id.indexOf(':');
  if (colon < 0 || id.slice(0, colon).trim() !== ctx.servedModelName) return undefined;
  const adapter = id.slice(colon + 1).trim();
  const card = adapter === '' ? all[0] : all.slice(1).find((c) => c.id === adapter);
  return card && { ...card, id };
}

export function handleModel(ctx: ServerContext, res: ServerResponse, id: string, showPaths: boolean): void {
  const card = cardFor(ctx, id, showPaths);
  if (!card) throw new TsloraError('route_not_found', `model '${id}' does not exist; GET /v1/models lists the base model and the loaded adapters`, { param: 'model' });
  sendJson(res, 200, card);
}

export function handleHealth(ctx: ServerContext, res: ServerResponse): void {
  if (!ctx.ready) throw new TsloraError('shutting_down', 'the server is not ready');
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('OK');
}

export async function handleHealthGenerate(ctx: ServerContext, res: ServerResponse): Promise<void> {
  const params = { ...samplingParamsSchema.parse({}), max_new_tokens: 1, temperature: 0 };
  const ids = ctx.tokenizer.encode('Hello');
  const job = await ctx.service.start([
    { promptIds: ids.length ? ids : [0], params, adapterName: null, clientId: 'health', returnLogprob: false, logprobStartLen: -1, topLogprobsNum: 0, returnTextInLogprobs: false },
  ]);
  await job.done;
  if (job.runs[0].finish?.type === 'abort') throw new TsloraError('internal', `health generation failed: ${job.runs[0].finish.message}`);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('OK');
}

export function handleModelInfo(ctx: ServerContext, res: ServerResponse): void {
  sendJson(res, 200, {
    model_path: ctx.modelPath,
    tokenizer_path: ctx.config.tokenizerPath ?? ctx.modelPath,
    served_model_name: ctx.servedModelName,
    is_generation: true,
    architecture: ctx.spec.hfArchitecture,
    context_length: ctx.contextLength,
    vocab_size: ctx.spec.vocabSize,
  });
}

export async function handleServerInfo(ctx: ServerContext, res: ServerResponse): Promise<void> {
  const stats = await ctx.engine.stats();
  const { apiKey, ...config } = ctx.config;
  const nameOfId = new Map(ctx.adapters.registry.list().map((e) => [e.id, e.name]));
  const loraSlots = stats.slotIds.map((id) => (id === null ? null : id === '__base__' ? '(base)' : nameOfId.get(id) ?? `(evicted ${id})`));
  sendJson(res, 200, {
    ...config,
    api_key: apiKey ? '(set)' : null,
    lora_slots: loraSlots,
    version: 'tslora',
    engine: { ...ctx.engine.info, ...stats },
    loaded_adapters: ctx.adapters.loadedAdapters(),
    pinned_adapters: ctx.adapters.pinnedAdapters(),
  });
}

export async function handleMetrics(ctx: ServerContext, res: ServerResponse): Promise<void> {
  const stats = await ctx.engine.stats().catch(() => null);
  const nameOfId = new Map(ctx.adapters.registry.list().map((e) => [e.id, e.name]));
  const text = await ctx.metrics.render({
    engine: stats,
    host: { loaded: ctx.adapters.registry.size(), hostEvictions: ctx.adapters.hostEvictions, loads: ctx.adapters.loads, outstanding: ctx.service.outstanding },
    lora: { nameOfSlotId: (id) => nameOfId.get(id) ?? null },
  });
  res.writeHead(200, { 'content-type': ctx.metrics.contentType });
  res.end(text);
}
