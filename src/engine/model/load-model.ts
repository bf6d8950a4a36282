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
import { samplingDefaultsFromGenerationConfig, type ModelSamplingDefaults } from './sampling-defaults.js';
import type { ModelSpec, ModelWeights } from './types.js';
import { dominantDtype, loadModelWeights } from './weights.js';

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
  /** generation_config.json's sampling fields (API names, validated): request defaults, as in SGLang. */
  samplingDefaults: ModelSamplingDefaults;
  /** Why a generation_config.json sampling value was dropped (out of the API's range), for the caller to log. */
  samplingDefaultWarnings: string[];
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
  const samplingDefaultWarnings: string[] = [];
  const samplingDefaults = samplingDefaultsFromGenerationConfig(generation, (message) => samplingDefaultWarnings.push(message));
  return {
    dir: modelDir,
    spec,
    weights,
    tokenizer,
    chatTemplate,
    chatRenderer,
    samplingDefaults,
    samplingDefaultWarnings,
  };
}
