/**
 * Loads a Hugging Face model directory: config.json (+ generation_config.json), the safetensors headers, the
 * tokenizer and the chat template. Tensor data is never read here; the addon memory-maps `weights.files`.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TsloraError } from '../../errors.js';
import { ChatTemplateRenderer, resolveChatTemplate } from './chat-template.js';
import { parseModelConfig } from './config.js';
import { loadTokenizer, resolveTokenizerFiles, type TextTokenizer } from './tokenizer.js';
import type { ModelSpec, ModelWeights } from './types.js';
import { dominantDtype, loadModelWeights } from './weights.js';

/** Sampling defaults a model ships in generation_config.json (used when a request leaves them unset). */
export interface GenerationDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}

export interface LoadedModel {
  /** Absolute path of the model directory. */
  dir: string;
  spec: ModelSpec;
  weights: ModelWeights;
  tokenizer: TextTokenizer;
  /** Jinja source of the default chat template, or null when the model has none. */
  chatTemplate: string | null;
  /** Renders chat messages with chatTemplate and the tokenizer's special tokens (throws when there is none). */
  chatRenderer: ChatTemplateRenderer;
  generationDefaults: GenerationDefaults;
}

export interface LoadModelOptions {
  /** A directory with tokenizer.json (+ tokenizer_config.json), or the tokenizer.json file; default: the model dir. */
  tokenizerPath?: string;
}

async function readJsonFile(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new TsloraError('corrupt_file', `${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function finiteNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** The sampling fields of generation_config.json, in tslora's names. */
export function parseGenerationDefaults(generation: Record<string, unknown>): GenerationDefaults {
  const defaults: GenerationDefaults = {};
  const temperature = finiteNumber(generation.temperature);
  if (temperature !== undefined) defaults.temperature = temperature;
  const topP = finiteNumber(generation.top_p);
  if (topP !== undefined) defaults.topP = topP;
  const topK = finiteNumber(generation.top_k);
  if (topK !== undefined) defaults.topK = topK;
  const repetitionPenalty = finiteNumber(generation.repetition_penalty);
  if (repetitionPenalty !== undefined) defaults.repetitionPenalty = repetitionPenalty;
  const maxNewTokens = finiteNumber(generation.max_new_tokens);
  if (maxNewTokens !== undefined) defaults.maxNewTokens = maxNewTokens;
  return defaults;
}

export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const modelDir = resolve(dir);
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) {
    throw new TsloraError('model_not_found', `model directory ${modelDir} does not exist`, {
      hint: 'Pass --model-path pointing at a Hugging Face model directory (config.json, *.safetensors, tokenizer.json).',
    });
  }
  const configPath = join(modelDir, 'config.json');
  if (!existsSync(configPath)) {
    throw new TsloraError('model_not_found', `no config.json in ${modelDir}`, {
      hint: 'A model directory needs config.json, safetensors weights and tokenizer.json.',
    });
  }
  const generationPath = join(modelDir, 'generation_config.json');
  const generation = existsSync(generationPath) ? ((await readJsonFile(generationPath)) as Record<string, unknown>) : {};
  const spec = parseModelConfig(await readJsonFile(configPath), generation);
  const weights = await loadModelWeights(modelDir, spec);
  spec.weightDtype = dominantDtype(weights);

  const tokenizerPath = resolve(options.tokenizerPath ?? modelDir);
  const { tokenizer, config: tokenizerConfig } = await loadTokenizer(tokenizerPath);
  if (tokenizer.vocabSize > spec.vocabSize) {
    throw new TsloraError('unsupported_model', `the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${spec.vocabSize}`, {
      hint: 'The tokenizer does not belong to this model; check --tokenizer-path.',
    });
  }
  const tokenizerDir = dirname(resolveTokenizerFiles(tokenizerPath).tokenizerJson);
  const chatTemplate = resolveChatTemplate(tokenizerConfig, tokenizerDir);
  const chatRenderer = new ChatTemplateRenderer(chatTemplate, tokenizerConfig, `model '${basename(modelDir)}'`);
  // The tokenizer's eos (e.g. <|im_end|>) also ends generation, as in transformers' generation config merge.
  spec.eosTokenIds = [...new Set([...spec.eosTokenIds, ...tokenizer.eosTokenIds])];
  if (spec.bosTokenId === null) spec.bosTokenId = tokenizer.bosTokenId;
  return {
    dir: modelDir,
    spec,
    weights,
    tokenizer,
    chatTemplate,
    chatRenderer,
    generationDefaults: parseGenerationDefaults(generation),
  };
}
