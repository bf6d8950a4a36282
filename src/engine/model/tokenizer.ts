/**
 * Text ⇄ token ids through @huggingface/tokenizers (tokenizer.json + tokenizer_config.json), plus incremental
 * detokenisation for streaming, which holds back pieces that do not yet form complete UTF-8 characters.
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { TsloraError } from '../../errors.js';

export interface StreamDecoderOptions {
  skipSpecialTokens?: boolean;
  /**
   * The prompt's ids. Their last few tokens seed the decode window so that the first generated piece keeps the
   * leading space that decoders such as Metaspace/Strip would drop at the start of a text.
   */
  promptIds?: ArrayLike<number>;
}

export interface StreamDecoder {
  /** Adds one generated token; returns the text that became final (often '', while a character is incomplete). */
  push(tokenId: number): string;
  /** Returns whatever is still held back (incomplete bytes decode to U+FFFD) and resets the decoder. */
  flush(): string;
}

export interface TextTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder;
  vocabSize: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  specialTokenIds: Set<number>;
}

/** How many prompt tokens seed a stream decoder's window (enough for any leading-space or byte context). */
const PROMPT_CONTEXT_TOKENS = 6;
const REPLACEMENT_CHAR = '\uFFFD';

type TokenizerConfig = Record<string, unknown>;

function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: number[];
  readonly specialTokenIds: Set<number>;

  constructor(private readonly tokenizer: Tokenizer, config: TokenizerConfig) {
    let maxId = -1;
    for (const id of tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.specialTokenIds = new Set(
      [...tokenizer.get_added_tokens_decoder().entries()].filter(([, token]) => token.special).map(([id]) => id),
    );
    this.bosTokenId = this.idOf(tokenContent(config.bos_token));
    const eos = this.idOf(tokenContent(config.eos_token));
    this.eosTokenIds = eos === null ? [] : [eos];
  }

  private idOf(token: string | null): number | null {
    if (token === null) return null;
    return this.tokenizer.token_to_id(token) ?? null;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    // Ids past the tokenizer's vocabulary (models often pad vocab_size) decode to nothing, as in Python.
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (Number.isInteger(id) && id >= 0 && id < this.vocabSize) known.push(id);
    }
    if (known.length === 0) return '';
    return this.tokenizer.decode(known, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  createStreamDecoder(opts: StreamDecoderOptions = {}): StreamDecoder {
    return new WindowStreamDecoder(this, opts);
  }
}

/**
 * The usual incremental detokeniser (as in vLLM/TGI): decode a small window twice, once up to the previous read
 * point and once to the end, and emit the difference unless it ends in an incomplete character.
 */
class WindowStreamDecoder implements StreamDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private readonly skipSpecialTokens: boolean;

  constructor(private readonly tokenizer: TextTokenizer, opts: StreamDecoderOptions) {
    this.skipSpecialTokens = opts.skipSpecialTokens ?? false;
    const prompt = opts.promptIds ? Array.from(opts.promptIds) : [];
    this.ids = prompt.slice(Math.max(0, prompt.length - PROMPT_CONTEXT_TOKENS));
    this.readOffset = this.ids.length;
  }

  private decodeRange(start: number, end: number): string {
    return this.tokenizer.decode(this.ids.slice(start, end), { skipSpecialTokens: this.skipSpecialTokens });
  }

  push(tokenId: number): string {
    this.ids.push(tokenId);
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const fullText = this.decodeRange(this.prefixOffset, this.ids.length);
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT_CHAR)) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    // Drop tokens that left the window for good, so memory stays bounded on long generations.
    if (this.prefixOffset > 0) {
      this.ids = this.ids.slice(this.prefixOffset);
      this.readOffset -= this.prefixOffset;
      this.prefixOffset = 0;
    }
    return fullText.slice(prefixText.length);
  }

  flush(): string {
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const fullText = this.decodeRange(this.prefixOffset, this.ids.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new TsloraError('corrupt_file', `${what} ${path} is not valid JSON`, { cause: error });
  }
}

/** Where tokenizer.json lives for a model dir or an explicit --tokenizer-path (a directory or the file itself). */
export function resolveTokenizerFiles(path: string): { tokenizerJson: string; tokenizerConfig: string } {
  const isFile = existsSync(path) && statSync(path).isFile();
  const dir = isFile ? dirname(path) : path;
  return { tokenizerJson: isFile ? path : join(dir, 'tokenizer.json'), tokenizerConfig: join(dir, 'tokenizer_config.json') };
}

/** Loads a tokenizer from a directory holding tokenizer.json (and usually tokenizer_config.json), or the file. */
export async function loadTokenizer(path: string): Promise<{ tokenizer: TextTokenizer; config: TokenizerConfig }> {
  const files = resolveTokenizerFiles(path);
  if (!existsSync(files.tokenizerJson)) {
    throw new TsloraError('model_not_found', `no tokenizer.json at ${files.tokenizerJson}`, {
      hint: 'tslora needs a fast tokenizer file (tokenizer.json); pass --tokenizer-path to point at one.',
    });
  }
  const tokenizerJson = await readJson(files.tokenizerJson, 'tokenizer file');
  const config = existsSync(files.tokenizerConfig) ? await readJson(files.tokenizerConfig, 'tokenizer config') : {};
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(tokenizerJson, config);
  } catch (error) {
    throw new TsloraError('unsupported_model', `cannot build a tokenizer from ${files.tokenizerJson}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { tokenizer: new HfTextTokenizer(tokenizer, config), config };
}
