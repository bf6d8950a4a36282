/**
 * `tslora adapter load|unload|pin|unpin|list`: the adapter admin API of a running server (spec b.3-b.5).
 * Exit codes: 0 ok, 2 usage, 3 unreachable, 4 not loaded or not found, 5 rejected by the server, 6 unauthorized.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { adapterLoadOptions, adapterOptions, resolveAdapterCliConfig, type AdapterCliConfig } from '../../config/adapter-options.js';
import { TsloraClient } from '../../client/adapter-client.js';
import { toTsloraError } from '../../errors.js';
import { adapterExitCode, reportError } from '../report.js';
import { addTableOptions, readTableValues } from '../table-options.js';
import { formatListing, loadedLine } from './adapter-output.js';

type Action = (client: TsloraClient, config: AdapterCliConfig, args: string[], command: Command) => Promise<{ json: unknown; text: string }>;

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Runs one subcommand: resolve options, call the server, print text or JSON, set the exit code. */
function run(name: string, action: Action) {
  return async (...commanderArgs: unknown[]): Promise<void> => {
    const command = commanderArgs[commanderArgs.length - 1] as Command;
    const args = command.args;
    let config: AdapterCliConfig;
    try {
      config = resolveAdapterCliConfig(readTableValues(command, adapterOptions), process.env);
    } catch (error) {
      process.exitCode = reportError(`adapter ${name}`, error);
      return;
    }
    try {
      const client = new TsloraClient({ url: config.url, apiKey: config.apiKey, timeoutMs: config.timeoutMs });
      const result = await action(client, config, args, command);
      if (config.json) printJson(result.json);
      else process.stdout.write(`${result.text}\n`);
    } catch (error) {
      const err = toTsloraError(error);
      if (config.json) printJson({ success: false, error_code: err.code, error_message: err.message, hint: err.hint ?? null });
      process.exitCode = reportError(`adapter ${name}`, err, adapterExitCode);
    }
  };
}

/**
 * A relative PATH that exists here is sent as an absolute path, so that a local server finds it whatever its
 * working directory; anything else is sent as typed (a path on a remote server's machine).
 */
function pathForServer(path: string): string {
  return !isAbsolute(path) && existsSync(path) ? resolve(path) : path;
}

const load: Action = async (client, _config, [name, typedPath], command) => {
  const pinned = readTableValues(command, adapterLoadOptions).pinned === true;
  const path = pathForServer(typedPath);
  const response = await client.loadAdapter(name, path, { pinned });
  return { json: response, text: `Loaded adapter '${name}' from ${path}${pinned ? ' (pinned)' : ''}.\n${loadedLine(response)}` };
};

const unload: Action = async (client, _config, [name]) => {
  const response = await client.unloadAdapter(name);
  return { json: response, text: `Unloaded adapter '${name}'.\n${loadedLine(response)}` };
};

function pinAction(pinned: boolean): Action {
  return async (client, _config, [name]) => {
    const { response, method } = await client.pinAdapter(name, pinned);
    if (method === 'reload') {
      process.stderr.write(
        `tslora adapter ${pinned ? 'pin' : 'unpin'}: the server has no /pin_lora_adapter, so '${name}' was unloaded and loaded again.\n`,
      );
    }
    return { json: { ...response, method }, text: `${pinned ? 'Pinned' : 'Unpinned'} adapter '${name}'.` };
  };
}

const list: Action = async (client) => {
  const listing = await client.listAdapters();
  return { json: listing, text: formatListing(listing) };
};

export function registerAdapterCommand(program: Command): void {
  const adapter = program
    .command('adapter')
    .description('Load, unload, pin, unpin and list adapters on a running tslora server.')
    .addHelpText('after', '\nExit codes: 0 ok, 2 usage, 3 server unreachable, 4 adapter not loaded (or no adapter at PATH), 5 rejected by the server, 6 unauthorized.\n');

  const subcommands: Array<{ name: string; args: string[]; description: string; action: Action; extra?: typeof adapterLoadOptions }> = [
    { name: 'load', args: ['<name>', '<path>'], description: 'Load the PEFT adapter at PATH as NAME (a relative PATH that exists here is sent as an absolute path).', action: load, extra: adapterLoadOptions },
    { name: 'unload', args: ['<name>'], description: 'Unload NAME (waits for its running requests).', action: unload },
    { name: 'pin', args: ['<name>'], description: 'Pin NAME: it keeps its device slot and is never evicted.', action: pinAction(true) },
    { name: 'unpin', args: ['<name>'], description: 'Unpin NAME: it becomes an ordinary eviction candidate again.', action: pinAction(false) },
    { name: 'list', args: [], description: 'List the base model and the loaded adapters (from GET /v1/models).', action: list },
  ];
  for (const sub of subcommands) {
    const command = adapter.command(sub.name).description(sub.description);
    for (const arg of sub.args) command.argument(arg);
    if (sub.extra) addTableOptions(command, sub.extra);
    addTableOptions(command, adapterOptions);
    command.addHelpText('after', '\nEnvironment: TSLORA_URL, TSLORA_API_KEY, TSLORA_TIMEOUT, TSLORA_JSON.\n');
    command.action(run(sub.name, sub.action));
  }
}
