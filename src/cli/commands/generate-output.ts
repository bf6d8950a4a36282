/** Human-readable output of `tslora generate`: one line per prompt, `[adapter] prompt → text`. */
import type { GenerateResponseItem } from '../../protocol/generate.js';

export function adapterLabel(adapter: string | null): string {
  return `[${adapter ?? 'base'}]`;
}

/** The part before the answer: `[add] 12+30= → `. */
export function blockPrefix(adapter: string | null, prompt: string): string {
  return `${adapterLabel(adapter)} ${prompt} → `;
}

/** Why an answer ended, when that is worth saying (an abort; a cut at --max-new-tokens is shown as "…"). */
function finishNote(item: GenerateResponseItem): string {
  const finish = item.meta_info?.finish_reason;
  if (!finish) return '';
  if (finish.type === 'abort') return `  (aborted: ${finish.message})`;
  if (finish.type === 'length') return ' …';
  return '';
}

export function formatBlock(adapter: string | null, prompt: string, item: GenerateResponseItem): string {
  return `${blockPrefix(adapter, prompt)}${item.text}${finishNote(item)}`;
}

export function formatError(adapter: string | null, prompt: string, message: string): string {
  return `${blockPrefix(adapter, prompt)}(error: ${message})`;
}
