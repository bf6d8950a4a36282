/**
 * `tslora generate [PROMPT...] [--lora NAME ...]`: one POST /generate batch against a running server, the i-th
 * --lora for the i-th prompt. Prompts come from the arguments, else one per line from stdin (when it is not a
 * terminal). Exit codes as the adapter commands: 0 ok, 2 usage, 3 unreachable, 4 adapter not loaded, 5 rejected,
 * 6 unauthorized.
 *
 * --stream with one prompt prints the text as it arrives; with several prompts, each prompt's line is printed as
 * soon as its answer is complete (in completion order). --json prints the server's response array (with
 * --stream: each event as one JSON line).
 */
import type { Command } from 'commander';
import { adapterOptions, resolveAdapterCliConfig, type AdapterCliConfig } from '../../config/adapter-options.js';
import { generateOptions, resolveGenerateRequest, type GenerateRequestPlan } from '../../config/generate-options.js';
import { GenerateClient, type GenerateEvent } from '../../client/generate-client.js';
import { TsloraError, toTsloraError } from '../../errors.js';
import { adapterExitCode, reportError } from '../report.js';
import { addTableOptions, readTableValues } from '../table-options.js';
import { blockPrefix, formatBlock, formatError } from './generate-output.js';

const HELP_AFTER = `
Prompts: the arguments, or (when none are given and stdin is not a terminal) one prompt per line of stdin.
Adapters: no --lora = the base model; one --lora = that adapter for every prompt; otherwise exactly one --lora per
prompt, in order ('base' or '-' = the base model for that prompt). All prompts go to the server as ONE batch.

--stream: with one prompt, the text is printed as it is generated; with several, each prompt's line is printed as
soon as its answer is complete. --json prints the server's response array (with --stream, one event per line).

Examples:
  tslora generate "12+30=" "attack at dawn=" "the quick brown fox=" --lora add --lora caesar --lora last_word
  tslora generate "hello world=" --lora reverse --stream
  printf '4096=\\n17=\\n' | tslora generate --lora spell --json

Environment: TSLORA_URL, TSLORA_API_KEY, TSLORA_TIMEOUT, TSLORA_JSON.
Exit codes: 0 ok, 2 usage, 3 server unreachable, 4 adapter not loaded, 5 rejected by the server, 6 unauthorized.
`;

async function readStdinPrompts(): Promise<string[]> {
  if (process.stdin.isTTY) return [];
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/).filter((line) => line.trim() !== '');
}

function printJson(value: unknown, pretty = true): void {
  process.stdout.write(`${pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value)}\n`);
}

async function runBatch(client: GenerateClient, config: AdapterCliConfig, plan: GenerateRequestPlan): Promise<void> {
  const items = await client.generate(plan.body);
  if (config.json) return printJson(items);
  const prompts = plan.body.text;
  process.stdout.write(`${items.map((item, i) => formatBlock(plan.adapters[i], prompts[i], item)).join('\n')}\n`);
}

/** Streams the batch; returns the message of the first failed prompt (null when all succeeded). */
async function runStream(client: GenerateClient, config: AdapterCliConfig, plan: GenerateRequestPlan): Promise<string | null> {
  const prompts = plan.body.text;
  const single = prompts.length === 1;
  const incremental = config.json ? false : await client.streamsIncrementally();
  const shown = prompts.map(() => '');
  let firstError: string | null = null;
  let prefixShown = false; // the single prompt's `[adapter] prompt → `, once its first text arrives
  await client.generateStream(plan.body, (event: GenerateEvent) => {
    if (config.json) return printJson(event.kind === 'item' ? { ...event.item, index: event.index } : { error: { message: event.message }, index: event.index }, false);
    const i = event.index;
    if (event.kind === 'error') {
      firstError ??= event.message;
      if (single && prefixShown) process.stdout.write('\n');
      process.stderr.write(`${formatError(plan.adapters[i], prompts[i], event.message)}\n`);
      return;
    }
    const text = incremental ? shown[i] + event.item.text : event.item.text;
    if (single && !prefixShown) {
      process.stdout.write(blockPrefix(plan.adapters[0], prompts[0]));
      prefixShown = true;
    }
    if (single) process.stdout.write(text.startsWith(shown[i]) ? text.slice(shown[i].length) : `\n${text}`);
    shown[i] = text;
    const done = event.item.meta_info?.finish_reason != null;
    if (done && single) process.stdout.write('\n');
    if (done && !single) process.stdout.write(`${formatBlock(plan.adapters[i], prompts[i], { ...event.item, text })}\n`);
  });
  return firstError;
}

export function registerGenerateCommand(program: Command): void {
  const command = program
    .command('generate')
    .description('Send prompts to a running tslora server as one batch, each with its own adapter (POST /generate).')
    .argument('[prompt...]', 'Prompts (default: one per line of stdin).')
    .addHelpText('after', HELP_AFTER);
  addTableOptions(command, generateOptions);
  addTableOptions(command, adapterOptions);
  command.action(async (promptArgs: string[]) => {
    let config: AdapterCliConfig;
    let plan: GenerateRequestPlan;
    try {
      config = resolveAdapterCliConfig(readTableValues(command, adapterOptions), process.env);
      const prompts = promptArgs.length > 0 ? promptArgs : await readStdinPrompts();
      plan = resolveGenerateRequest(prompts, readTableValues(command, generateOptions));
    } catch (error) {
      process.exitCode = reportError('generate', error);
      return;
    }
    try {
      const client = new GenerateClient({ url: config.url, apiKey: config.apiKey, timeoutMs: config.timeoutMs });
      if (!plan.stream) return await runBatch(client, config, plan);
      const failed = await runStream(client, config, plan);
      if (failed !== null) process.exitCode = reportError('generate', new TsloraError('invalid_request', failed), adapterExitCode);
    } catch (error) {
      const err = toTsloraError(error);
      if (config.json) printJson({ success: false, error_code: err.code, error_message: err.message, hint: err.hint ?? null });
      process.exitCode = reportError('generate', err, adapterExitCode);
    }
  });
}
