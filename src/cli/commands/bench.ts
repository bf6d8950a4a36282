/// <reference types="node" />
/**
 * `tslora bench [CONFIG]`: commander wiring only. The option table lives in src/config/bench-options.ts; the
 * experiment runner in src/bench.
 */
import { Command, Option } from 'commander';
import { benchOptions } from '../../config/bench-options.js';
import { coerceValue, type ValueSource } from '../../config/coerce.js';
import type { OptionSpec } from '../../config/option-types.js';
import { TsloraError, exitCodeForCode, toTsloraError } from '../../errors.js';
import { runBenchCli } from '../../bench/cli-entry.js';

/** Adds one commander option per table entry. Values stay raw strings here and are coerced by readTableOptions. */
export function addTableOptions(command: Command, table: readonly OptionSpec[]): void {
  for (const spec of table) {
    const names = [...(spec.aliases ?? []).map((alias) => `--${alias}`), `--${spec.flag}`].join(', ');
    if (spec.type === 'boolean') {
      command.addOption(new Option(names, spec.help).helpGroup(`${spec.group}:`));
      if (spec.negatable) command.addOption(new Option(`--no-${spec.flag}`, `Turn off --${spec.flag}.`).hideHelp());
      continue;
    }
    const option = new Option(`${names} <${spec.valueName ?? 'VALUE'}>`, spec.help).helpGroup(`${spec.group}:`);
    if (spec.type === 'list') option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    if (spec.defaultValue !== undefined) option.default(spec.defaultValue, String(spec.defaultValue));
    command.addOption(option);
  }
}

/** Coerces commander's raw values into typed values (usage errors exit 2); flags < TSLORA_* env < defaults. */
export function readTableOptions(raw: Record<string, unknown>, table: readonly OptionSpec[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of table) {
    const commanderKey = spec.flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
    let value = raw[commanderKey];
    let source: ValueSource = { kind: 'flag' };
    if (value === undefined && spec.env && process.env[spec.env] !== undefined) {
      value = spec.type === 'list' ? [process.env[spec.env]] : process.env[spec.env];
      source = { kind: 'env', name: spec.env };
    }
    if (value === undefined) {
      if (spec.defaultValue !== undefined) out[spec.key] = spec.defaultValue;
      continue;
    }
    if (spec.type === 'list' && Array.isArray(value)) {
      out[spec.key] = value.flatMap((item) => (spec.key === 'check' ? [String(item)] : String(item).split(/[\s,]+/).filter(Boolean)));
      continue;
    }
    out[spec.key] = coerceValue(spec, value, source);
  }
  return out;
}

/** Prints a TsloraError the CLI way and sets the exit code; never throws. */
export function reportCommandError(command: string, error: unknown): void {
  const err = toTsloraError(error);
  process.stderr.write(`tslora ${command}: error: ${err.describe()}\n`);
  process.exitCode = exitCodeForCode(err.code);
}

export function registerBenchCommand(program: Command): void {
  const command = program
    .command('bench')
    .description('Run latency experiments (backend A vs B, overlap loading, adapter sweeps) against tslora servers.')
    .argument('[config]', 'experiment config (JSON), a path or the name of a bundled one in bench-configs/', 'ci-smoke');
  addTableOptions(command, benchOptions);
  command.addHelpText(
    'after',
    '\nExamples:\n' +
      '  tslora bench bench-configs/ci-smoke.json\n' +
      '  tslora bench triton-vs-csgmv --out results/tvc --check "csgmv.e2e_p50 <= triton.e2e_p50 * 1.1"\n' +
      '  tslora bench overlap-loading --json > results.json\n' +
      '  tslora bench --list\n',
  );
  command.action(async (config: string, rawOptions: Record<string, unknown>) => {
    try {
      const options = readTableOptions(rawOptions, benchOptions);
      process.exitCode = await runBenchCli(config, options);
    } catch (error) {
      reportCommandError('bench', error instanceof TsloraError ? error : toTsloraError(error));
    }
  });
}
