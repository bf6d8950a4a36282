/**
 * Commander wiring of an option table. No defaults and no env are given to commander: it only collects what was
 * typed, so that src/config can layer defaults < config file < env < flags itself. Help shows each option once,
 * as `--[no-]flag` for negatable booleans and with its aliases, grouped by the table's headings.
 */
import { Command, Help, Option } from 'commander';
import type { OptionSpec } from '../config/option-types.js';

const helpTerms = new WeakMap<Option, string>();

function term(spec: OptionSpec): string {
  return (spec.negatable ? `--[no-]${spec.flag}` : `--${spec.flag}`) + valuePlaceholder(spec);
}

function describe(spec: OptionSpec): string {
  const parts = [spec.help];
  if (spec.aliases?.length) parts.push(`(alias${spec.aliases.length > 1 ? 'es' : ''}: ${spec.aliases.map((a) => `--${a}`).join(', ')})`);
  if (spec.type === 'enum' && spec.choices) parts.push(`(choices: ${spec.choices.join(', ')})`);
  if (spec.repeatable) parts.push('(repeatable)');
  if (spec.defaultValue !== undefined && spec.type !== 'boolean') parts.push(`(default: ${String(spec.defaultValue)})`);
  return parts.join(' ');
}

function valuePlaceholder(spec: OptionSpec): string {
  if (spec.type === 'boolean') return '';
  if (spec.type === 'list' && spec.repeatable) return ` <${spec.valueName ?? 'VALUE'}>`;
  if (spec.type === 'list') return ` <${(spec.valueName ?? 'VALUE').replace(/\.\.\.$/, '')}...>`;
  return ` <${spec.valueName ?? 'VALUE'}>`;
}

/** Adds one commander option per entry (plus hidden --no-x and alias options). Values stay raw strings. */
export function addTableOptions(command: Command, table: readonly OptionSpec[]): void {
  for (const spec of table) {
    const option = new Option(`--${spec.flag}${valuePlaceholder(spec)}`, describe(spec)).helpGroup(`${spec.group}:`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    helpTerms.set(option, term(spec));
    command.addOption(option);
    if (spec.type === 'boolean' && spec.negatable) {
      command.addOption(new Option(`--no-${spec.flag}`).hideHelp().helpGroup(`${spec.group}:`));
    }
    for (const alias of spec.aliases ?? []) {
      command.addOption(new Option(`--${alias}${valuePlaceholder(spec)}`).hideHelp().helpGroup(`${spec.group}:`));
    }
  }
  command.configureHelp({
    minWidthToWrap: 30,
    optionTerm: (option: Option) => helpTerms.get(option) ?? new Help().optionTerm(option),
  });
}

function camel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/**
 * Reads commander's values back as {optionKey: raw value}, merging aliases (`--model` → modelPath). Giving an
 * option under two spellings with different values is a usage error.
 */
export function readTableValues(command: Command, table: readonly OptionSpec[]): Record<string, unknown> {
  const raw = command.opts() as Record<string, unknown>;
  const values: Record<string, unknown> = {};
  for (const spec of table) {
    const spellings = [spec.flag, ...(spec.aliases ?? [])].filter((name) => raw[camel(name)] !== undefined);
    if (spellings.length > 1) {
      const shown = spellings.map((name) => `--${name} ${JSON.stringify(raw[camel(name)])}`).join(' and ');
      throw Object.assign(new Error(`${shown} set the same option; give it once.`), { usageError: true });
    }
    if (spellings.length === 1) values[spec.key] = raw[camel(spellings[0])];
  }
  return values;
}
