/**
 * Incremental detokenisation: decode a sliding window and emit only text that is final, holding back a trailing
 * U+FFFD (an incomplete UTF-8 / byte-fallback sequence). The window starts with a few prompt tokens so that
 * tokenizers which drop a leading space when decoding from the start (SentencePiece) get the first word right.
 */
export interface DecodeFn {
  (ids: number[]): string;
}

const PROMPT_CONTEXT_TOKENS = 4;

export class IncrementalDetokenizer {
  private readonly decode: DecodeFn;
  private readonly ids: number[];
  private prefixOffset = 0;
  private readOffset: number;

  constructor(decode: DecodeFn, promptIds: readonly number[]) {
    this.decode = decode;
    this.ids = promptIds.slice(Math.max(0, promptIds.length - PROMPT_CONTEXT_TOKENS));
    this.readOffset = this.ids.length;
  }

  /** Adds tokens; returns the newly final text (possibly ''). */
  push(tokenIds: readonly number[]): string {
    this.ids.push(...tokenIds);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length > prefixText.length && !fullText.endsWith('\uFFFD') && fullText.startsWith(prefixText)) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return fullText.slice(prefixText.length);
    }
    if (!fullText.startsWith(prefixText) && !fullText.endsWith('\uFFFD')) {
      // A merge changed earlier text (rare); emit only what extends the common prefix.
      let common = 0;
      while (common < prefixText.length && prefixText[common] === fullText[common]) common++;
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return fullText.slice(prefixText.length > common ? prefixText.length : common);
    }
    return '';
  }

  /** Whatever is still held back (at the end of generation). */
  flush(): string {
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }
}
