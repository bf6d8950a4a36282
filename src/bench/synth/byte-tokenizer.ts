/**
 * A byte-level BPE tokenizer without merges: 256 byte tokens (GPT-2's byte→unicode alphabet, so any text
 * round-trips) plus begin/end-of-text specials. Small, valid for Hugging Face `tokenizers`, and enough for
 * benchmarks, which send token ids anyway.
 */
import { SYNTH_BOS_ID, SYNTH_EOS_ID } from './shapes.js';

export const BOS_TOKEN = '<|begin_of_text|>';
export const EOS_TOKEN = '<|end_of_text|>';

/** GPT-2's bytes_to_unicode table: printable bytes map to themselves, the rest to code points from 256 up. */
export function byteAlphabet(): string[] {
  const printable = new Set<number>();
  for (let b = 33; b <= 126; b++) printable.add(b);
  for (let b = 161; b <= 172; b++) printable.add(b);
  for (let b = 174; b <= 255; b++) printable.add(b);
  const alphabet: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) alphabet[b] = String.fromCodePoint(printable.has(b) ? b : 256 + extra++);
  return alphabet;
}

function special(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** tokenizer_config.json's added_tokens_decoder entries carry no id (the key is the id). */
function decoderEntry(content: string) {
  const { id: _id, ...rest } = special(0, content);
  return rest;
}

export function byteTokenizerJson(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteAlphabet().forEach((symbol, id) => {
    vocab[symbol] = id;
  });
  vocab[BOS_TOKEN] = SYNTH_BOS_ID;
  vocab[EOS_TOKEN] = SYNTH_EOS_ID;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(SYNTH_BOS_ID, BOS_TOKEN), special(SYNTH_EOS_ID, EOS_TOKEN)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
    },
  };
}

export function byteTokenizerConfig(maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: maxLength,
    added_tokens_decoder: {
      [String(SYNTH_BOS_ID)]: decoderEntry(BOS_TOKEN),
      [String(SYNTH_EOS_ID)]: decoderEntry(EOS_TOKEN),
    },
    chat_template:
      "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
  };
}
