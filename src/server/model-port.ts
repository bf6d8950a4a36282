/**
 * What the server needs from model loading (src/engine/model/load-model.ts, adapter.ts), wrapped into the narrow
 * shapes the server uses (tests substitute generated models through ServerDependencies).
 */
import { loadModel } from '../engine/model/load-model.js';
import type { ModelSamplingDefaults } from '../engine/model/sampling-defaults.js';
import { readAdapter } from '../engine/model/adapter.js';
import type { AdapterSpec, LoraTargetModule, ModelSpec, ModelWeights } from '../engine/model/types.js';
import type { ChatMessage, ServerTokenizer } from './context.js';

export interface ServerModel {
  dir: string;
  spec: ModelSpec;
  weights: ModelWeights;
  tokenizer: ServerTokenizer;
  eosTokenIds: number[];
  renderChat: ((messages: ChatMessage[]) => string) | null;
  /** generation_config.json's sampling defaults (absent: none) and why any value was dropped. */
  samplingDefaults?: ModelSamplingDefaults;
  samplingDefaultWarnings?: string[];
}

export interface AdapterReadOptions {
  /** null while inferring the pool from the start-up adapters. */
  maxRank: number | null;
  targetModules: LoraTargetModule[] | null;
  strict: boolean;
}

export type ReadAdapterFn = (path: string, spec: ModelSpec, options: AdapterReadOptions, name?: string) => Promise<{ adapter: AdapterSpec; warnings: string[] }>;

export async function loadServerModel(dir: string, tokenizerDir: string | null): Promise<ServerModel> {
  const loaded = await loadModel(dir, tokenizerDir ? { tokenizerPath: tokenizerDir } : {});
  const tok = loaded.tokenizer;
  const decode = (ids: number[], skipSpecialTokens: boolean) => tok.decode(ids, { skipSpecialTokens });
  const renderer = loaded.chatRenderer;
  return {
    dir: loaded.dir,
    spec: loaded.spec,
    weights: loaded.weights,
    eosTokenIds: [...new Set([...loaded.spec.eosTokenIds, ...tok.eosTokenIds])],
    samplingDefaults: loaded.samplingDefaults,
    samplingDefaultWarnings: loaded.samplingDefaultWarnings,
    renderChat: renderer.hasTemplate ? (messages) => renderer.render(messages.map((m) => ({ ...m })), { addGenerationPrompt: true }) : null,
    tokenizer: {
      encode: (text, addSpecialTokens = true) => tok.encode(text, { addSpecialTokens }),
      decode,
      tokenText: (id) => decode([id], false),
    },
  };
}

export const readAdapterFile: ReadAdapterFn = (path, spec, options, name) => readAdapter(path, spec, options, name);
