/**
 * Chat templates: the Jinja template from tokenizer_config.json (or chat_template.jinja), rendered with
 * @huggingface/jinja the way transformers' apply_chat_template(tokenize=False) renders it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { TsloraError } from '../../errors.js';

export interface ChatMessage {
  role: string;
  content: unknown;
  [key: string]: unknown;
}

export interface ChatRenderOptions {
  addGenerationPrompt?: boolean;
  tools?: unknown[];
  /** Extra template variables (e.g. enable_thinking), like apply_chat_template's **kwargs. */
  templateKwargs?: Record<string, unknown>;
}

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'];

function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * The model's default chat template: tokenizer_config.chat_template (a string, or a list of {name, template} from
 * which "default" is taken), else a chat_template.jinja file next to it (transformers ≥ 4.43 writes that), else null.
 */
export function resolveChatTemplate(tokenizerConfig: Record<string, unknown>, tokenizerDir: string): string | null {
  const value = tokenizerConfig.chat_template;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as Array<{ name?: unknown; template?: unknown }>;
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (chosen && typeof chosen.template === 'string') return chosen.template;
  }
  const jinjaFile = join(tokenizerDir, 'chat_template.jinja');
  if (existsSync(jinjaFile)) return readFileSync(jinjaFile, 'utf8');
  return null;
}

/** Renders chat messages to a prompt string with one model's template and special tokens. */
export class ChatTemplateRenderer {
  private readonly template: Template | null;
  private readonly specialTokens: Record<string, string>;

  constructor(
    templateSource: string | null,
    tokenizerConfig: Record<string, unknown>,
    private readonly modelName = 'the model',
  ) {
    this.specialTokens = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const text = tokenText(tokenizerConfig[key]);
      if (text !== undefined) this.specialTokens[key] = text;
    }
    if (templateSource === null) {
      this.template = null;
      return;
    }
    try {
      this.template = new Template(templateSource);
    } catch (error) {
      throw new TsloraError('unsupported_model', `the chat template of ${modelName} does not parse: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  get hasTemplate(): boolean {
    return this.template !== null;
  }

  render(messages: ChatMessage[], options: ChatRenderOptions = {}): string {
    if (this.template === null) {
      throw new TsloraError('invalid_request', `${this.modelName} has no chat template, so chat messages cannot be turned into a prompt`, {
        hint: 'Send a plain prompt (POST /generate with "text", or /v1/completions), or use a model whose tokenizer_config.json has a chat_template.',
        param: 'messages',
      });
    }
    try {
      return this.template.render({
        ...this.specialTokens,
        ...(options.templateKwargs ?? {}),
        messages,
        add_generation_prompt: options.addGenerationPrompt ?? false,
        ...(options.tools === undefined ? {} : { tools: options.tools }),
      });
    } catch (error) {
      // Templates reject bad conversations with raise_exception(...) (e.g. roles that do not alternate).
      throw new TsloraError('invalid_request', `the chat template of ${this.modelName} rejected the messages: ${(error as Error).message}`, {
        cause: error,
        param: 'messages',
      });
    }
  }
}

/** One-shot convenience: render `messages` with a template source. */
export function renderChatTemplate(
  templateSource: string | null,
  tokenizerConfig: Record<string, unknown>,
  messages: ChatMessage[],
  options: ChatRenderOptions = {},
): string {
  return new ChatTemplateRenderer(templateSource, tokenizerConfig).render(messages, options);
}
