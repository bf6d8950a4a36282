/** Everything the routes share, built once by startServer(). */
import type { ServeConfig } from '../config/serve-config.js';
import type { Engine } from '../engine/engine.js';
import type { AdapterManager } from '../engine/lora/adapter-manager.js';
import type { ModelSpec } from '../engine/model/types.js';
import type { GenerationService } from './generation/service.js';
import type { AdapterDirectory } from './adapter-directory.js';
import type { ServerMetrics } from './metrics.js';
import type { ModelSamplingDefaults } from './sampling-defaults.js';

export interface ServerTokenizer {
  /** addSpecialTokens (default true) adds BOS etc.; off for text rendered by a chat template. */
  encode(text: string, addSpecialTokens?: boolean): number[];
  decode(ids: number[], skipSpecialTokens: boolean): string;
  tokenText(id: number): string;
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ServerContext {
  config: ServeConfig;
  modelPath: string;
  servedModelName: string;
  contextLength: number;
  spec: ModelSpec;
  tokenizer: ServerTokenizer;
  /** Tokenizes large prompts on another thread (absent when the model came from a test's loader). */
  offLoopTokenizer?: { encode(text: string, addSpecialTokens: boolean): Promise<number[]> };
  /** Renders messages with the model's chat template plus the generation prompt; null = no template. */
  renderChat: ((messages: ChatMessage[]) => string) | null;
  /** The model's generation_config.json sampling values: defaults for fields a request leaves unset. */
  samplingDefaults: ModelSamplingDefaults;
  engine: Engine;
  adapters: AdapterManager;
  service: GenerationService;
  metrics: ServerMetrics;
  /** --lora-resolver-dir, or null. */
  adapterDirectory: AdapterDirectory | null;
  createdAtS: number;
  ready: boolean;
}
