/// <reference types="node" />
/**
 * `tslora synth model|adapters`: writes random-weight Hugging Face / PEFT folders for benchmarking.
 * Commander wiring only; the writers live in src/bench/synth.
 */
import { Command } from 'commander';
import { SYNTH_GROUPS, synthOptions } from '../../config/bench-options.js';
import { runSynthAdaptersCli, runSynthModelCli } from '../../bench/synth/cli-entry.js';
import { addTableOptions, readTableOptions, reportCommandError } from './bench.js';

export function registerSynthCommand(program: Command): void {
  const synth = program
    .command('synth')
    .description('Write random-weight models and PEFT adapters (HF layout) for benchmarks.');

  const modelTable = synthOptions.filter((spec) => spec.group === SYNTH_GROUPS.model);
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

  const adapterTable = synthOptions.filter(
    (spec) => spec.group === SYNTH_GROUPS.adapters || spec.key === 'out' || spec.key === 'dtype' || spec.key === 'synthSeed',
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
