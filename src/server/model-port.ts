/**
 * What the server needs from model loading (src/engine/model/load-model.ts, adapter.ts, chat-template.ts),
 * wrapped into the narrow shapes the server uses.
 */
import { TsloraError } from '../errors.js';
import type { AdapterSpec, LoraTargetModule, ModelSpec, ModelWeights } from '../engine/model/types.js';
import type { ChatMessage, ServerTokenizer } from './context.js';

export interface ServerModel {
  dir: string;
  spec: ModelSpec;
  weights: ModelWeights;
  tokenizer: ServerTokenizer;
  eosTokenIds: number[];
  renderChat: ((messages: ChatMessage[]) => string) | null;
}

export interface AdapterReadOptions {
  maxRank: number;
  targetModules: LoraTargetModule[] | 'all';
  strict: boolean;
}

export type ReadAdapterFn = (path: string, spec: ModelSpec, options: AdapterReadOptions) => Promise<{ adapter: AdapterSpec; warnings: string[] }>;

// Resolved at run time so the server builds while model loading is written in parallel.
const LOAD_MODEL = '../engine/model/load-model.js';
const ADAPTER = '../engine/model/adapter.js';

export async function loadServerModel(dir: string, tokenizerDir: string | null): Promise<ServerModel> {
  const mod = (await import(LOAD_MODEL)) as { loadModel: (dir: string, options?: unknown) => unknown };
  const loaded = (await mod.loadModel(dir, tokenizerDir ? { tokenizerPath: tokenizerDir } : undefined)) as {
    dir: string;
    spec: ModelSpec;
    weights: ModelWeights;
    tokenizer: {
      encode(text: string, options?: unknown): number[] | { ids: number[] };
      decode(ids: number[], options?: unknown): string;
      eosTokenIds?: number[];
    };
    chatTemplate?: { render(messages: ChatMessage[], options?: unknown): string } | ((messages: ChatMessage[]) => string) | null;
  };
  const tok = loaded.tokenizer;
  const encode = (text: string, addSpecialTokens = true): number[] => {
    const out = tok.encode(text, { addSpecialTokens });
    return Array.isArray(out) ? out : [...out.ids];
  };
  const decode = (ids: number[], skipSpecialTokens: boolean) => tok.decode(ids, { skipSpecialTokens, skip_special_tokens: skipSpecialTokens });
  const template = loaded.chatTemplate ?? null;
  const renderChat =
    template === null
      ? null
      : typeof template === 'function'
        ? template
        : (messages: ChatMessage[]) => template.render(messages, { addGenerationPrompt: true, add_generation_prompt: true });
  const eos = [...new Set([...(loaded.spec.eosTokenIds ?? []), ...(tok.eosTokenIds ?? [])])];
  return {
    dir: loaded.dir ?? dir,
    spec: loaded.spec,
    weights: loaded.weights,
    eosTokenIds: eos,
    renderChat,
    tokenizer: { encode, decode, tokenText: (id) => decode([id], false) },
  };
}

export async function adapterReader(): Promise<ReadAdapterFn> {
  const mod = (await import(ADAPTER)) as { readAdapter?: (...args: unknown[]) => unknown };
  if (typeof mod.readAdapter !== 'function') throw new TsloraError('internal', 'adapter reading is not available in this build');
  const read = mod.readAdapter;
  return async (path, spec, options) => (await read(path, spec, options)) as { adapter: AdapterSpec; warnings: string[] };
}
