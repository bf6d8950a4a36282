/**
 * Bounded work before admission: a text prompt is measured in bytes before it is tokenized, so a prompt that can
 * never fit the context is refused at once; one that may fit but is large is tokenized off the event loop.
 */
import { TsloraError } from '../errors.js';
import type { ServerContext } from './context.js';
import { OFF_LOOP_TOKENIZE_CHARS } from './off-loop-tokenizer.js';

/**
 * No tokenizer tslora serves has tokens longer than this many bytes, so a text of more than
 * contextLength × MAX_BYTES_PER_TOKEN bytes has more tokens than the context holds.
 */
export const MAX_BYTES_PER_TOKEN = 256;

export function maxPromptBytes(contextLength: number): number {
  return contextLength * MAX_BYTES_PER_TOKEN;
}

/** Tokenizes a prompt text after checking its size; `param` names the request field in the 400. */
export async function encodePrompt(ctx: ServerContext, text: string, param: string, addSpecialTokens = true): Promise<number[]> {
  const limit = maxPromptBytes(ctx.contextLength);
  // UTF-16 length ≤ UTF-8 bytes ≤ 3 × UTF-16 length: the cheap test first.
  if (text.length > limit || (text.length * 3 > limit && Buffer.byteLength(text, 'utf8') > limit)) {
    throw new TsloraError('invalid_request', `${param} is ${Buffer.byteLength(text, 'utf8')} bytes; a prompt must fit the context of ${ctx.contextLength} tokens, so at most ${limit} bytes are accepted`, {
      hint: 'Shorten the prompt.',
      param,
    });
  }
  if (text.length > OFF_LOOP_TOKENIZE_CHARS && ctx.offLoopTokenizer) return ctx.offLoopTokenizer.encode(text, addSpecialTokens);
  return ctx.tokenizer.encode(text, addSpecialTokens);
}
