/// <reference types="node" />
/**
 * `tslora synth model|adapters`: writes random-weight Hugging Face / PEFT folders for benchmarking.
 * Commander wiring only; the writers live in src/bench/synth.
 */
import { Command } from 'commander';
import { SYNTH_GROUPS, synthOptions } from '../../config/bench-options.js';
import type { OptionSpec } from '../../config/option-types.js';
import { runSynthAdaptersCli, runSynthModelCli } from '../../bench/synth/cli-entry.js';
import { addTableOptions, readTableOptions, reportCommandError } from './bench.js';

/** Options both subcommands take (listed in the table under 'synth model'). */
const SHARED_KEYS = new Set(['out', 'dtype', 'synthSeed']);

/**
 * The table with help headings for one subcommand: the shared options under "Output", the rest under `heading`
 * (the table's own group names say which subcommand an option belongs to, which reads wrong in the other's help).
 */
function helpTable(table: readonly OptionSpec[], heading: string): OptionSpec[] {
  const own = table.filter((spec) => !SHARED_KEYS.has(spec.key)).map((spec) => ({ ...spec, group: heading }));
  const shared = table.filter((spec) => SHARED_KEYS.has(spec.key)).map((spec) => ({ ...spec, group: 'Output' }));
  return [...own, ...shared];
}

export function registerSynthCommand(program: Command): void {
  const synth = program
    .command('synth')
    .description('Write random-weight models and PEFT adapters (HF layout) for benchmarks.');

  const modelTable = helpTable(synthOptions.filter((spec) => spec.group === SYNTH_GROUPS.model), 'Model');
  const model = synth
    .command('model')
    .description('Write a random-weight model: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.');
  addTableOptions(model, modelTable);
  model.addHelpText('after', '\nExample:\n  tslora synth model --shape llama-3.2-1b --layers 2 --out /tmp/llama1b-2l\n');
  model.action(async (rawOptions: Record<string, unknown>) => {
    try {
      process.exitCode = await runSynthModelCli(readTableOptions(rawOptions, modelTable));
    } catch (error) {
      reportCommandError('synth model', error);
    }
  });

  const adapterTable = helpTable(
    synthOptions.filter((spec) => spec.group === SYNTH_GROUPS.adapters || SHARED_KEYS.has(spec.key)),
    'Adapters',
  );
  const adapters = synth
    .command('adapters')
    .description('Write random PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors) for a model.');
  addTableOptions(adapters, adapterTable);
  adapters.addHelpText(
    'after',
    '\nExample:\n  tslora synth adapters --model /tmp/llama1b-2l --count 8 --rank 8,16,32,64 --targets all --out /tmp/loras\n',
  );
  adapters.action(async (rawOptions: Record<string, unknown>) => {
    try {
      process.exitCode = await runSynthAdaptersCli(readTableOptions(rawOptions, adapterTable));
    } catch (error) {
      reportCommandError('synth adapters', error);
    }
  });
}
