/**
 * `tslora serve`: resolve the configuration (usage errors exit 2 before anything loads), print its warnings, start
 * the server, and close it cleanly on SIGINT/SIGTERM.
 */
import type { Command } from 'commander';
import { readConfigFile } from '../../config/config-file.js';
import { resolveServeConfig } from '../../config/resolve-serve.js';
import { serveOptions } from '../../config/serve-options.js';
import { startServer } from '../../server/index.js';
import { runReplicas } from '../replicas.js';
import { reportError } from '../report.js';
import { addTableOptions, readTableValues } from '../table-options.js';

const SERVE_HELP_AFTER = `
Every option can also be set with a TSLORA_* environment variable (TSLORA_ + the flag in upper snake case, e.g.
TSLORA_MAX_LORAS_PER_BATCH=4) or in a --config JSON file. Precedence: defaults < config file < env < flags.
Boolean flags accept --no-<flag> to override a config file or env value.

When adapters will be loaded at run time, give both --max-lora-rank and --lora-target-modules: the adapter pool
is sized once at start-up and later adapters must fit it.

Examples:
  tslora serve                                        # the embedded demo model and its adapters, on the CPU
  tslora serve --model-path ./Qwen2.5-0.5B --lora-paths sql=./loras/sql chat=./loras/chat
  tslora serve --model ./llama --lora-paths '{"lora_name":"sql","lora_path":"./loras/sql","pinned":true}'
  tslora serve --model ./llama --enable-lora --max-lora-rank 64 --lora-target-modules all
  tslora serve --config serve.json --port 8000
  tslora serve --replicas 2 --port 8001 --enable-metrics   # two servers on 8001 and 8002, for a proxy in front
`;

export function registerServeCommand(program: Command): void {
  const command = program
    .command('serve')
    .description('Serve a base model with many LoRA adapters (SGLang-compatible flags and HTTP API).')
    .addHelpText('after', SERVE_HELP_AFTER);
  addTableOptions(command, serveOptions);
  command.action(async () => {
    let config;
    try {
      const argvValues = readTableValues(command, serveOptions);
      const configPath = (argvValues.config as string | undefined) ?? (process.env.TSLORA_CONFIG || undefined);
      const configFile = configPath ? readConfigFile(configPath) : undefined;
      config = resolveServeConfig(argvValues, process.env, configFile);
    } catch (error) {
      process.exitCode = reportError('serve', error);
      return;
    }
    for (const warning of config.warnings) process.stderr.write(`tslora serve: ${warning}\n`);
    if (config.replicas > 1) {
      try {
        process.exitCode = await runReplicas(config, process.argv[1], process.argv.slice(2));
      } catch (error) {
        process.exitCode = reportError('serve', error);
      }
      return;
    }
    try {
      const server = await startServer(config);
      let closing = false;
      let aborting = false;
      const shutdown = (signal: NodeJS.Signals): void => {
        if (aborting) return;
        if (closing) {
          // Second signal: exit with the shell's 128 + signal number, after the engine thread left native code.
          aborting = true;
          process.stderr.write(`tslora serve: ${signal} again, cancelling every request and exiting.\n`);
          const status = signal === 'SIGINT' ? 130 : 143;
          void server.abort().finally(() => process.exit(status));
          return;
        }
        closing = true;
        process.stderr.write(`tslora serve: ${signal} received, shutting down.\n`);
        server.close().then(
          () => aborting || process.exit(0),
          (error: unknown) => aborting || process.exit(reportError('serve', error)),
        );
      };
      process.on('SIGINT', shutdown);
      process.on('SIGTERM', shutdown);
      // printed once the handlers are in place: whoever reads the URL may signal right away
      process.stdout.write(`tslora serve: listening on ${server.url}\n`);
    } catch (error) {
      process.exitCode = reportError('serve', error);
    }
  });
}
