/**
 * The tslora command line: commander wiring of serve, adapter, generate, bench and synth. Commander's own usage errors
 * (unknown option, missing argument) exit with status 2 like every other usage error.
 */
import { Command, CommanderError } from 'commander';
import { EXIT_CODES } from '../errors.js';
import { registerAdapterCommand } from './commands/adapter.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerGenerateCommand } from './commands/generate.js';
import { registerServeCommand } from './commands/serve.js';
import { registerSynthCommand } from './commands/synth.js';
import { packageVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('tslora')
    .description('Serve one base LLM with many LoRA adapters mixed in every batch (S-LoRA / Punica / SGLang style).')
    .version(packageVersion(), '-V, --version', 'Print the version.')
    .helpOption('-h, --help', 'Show help for a command.')
    .showSuggestionAfterError(true)
    .showHelpAfterError("(Run 'tslora --help' for the commands.)")
    .exitOverride();
  registerServeCommand(program);
  registerAdapterCommand(program);
  registerGenerateCommand(program);
  registerBenchCommand(program);
  registerSynthCommand(program);
  pointSubcommandsAtTheirHelp(program);
  program.addHelpText('after', '\nRun `tslora <command> --help` for the options of a command. Manual: man tslora.\n');
  return program;
}

/** After a usage error, each subcommand names its own help ("Run 'tslora adapter load --help'"), not a placeholder. */
function pointSubcommandsAtTheirHelp(parent: Command, path = 'tslora'): void {
  for (const command of parent.commands) {
    const name = `${path} ${command.name()}`;
    command.showHelpAfterError(`(Run '${name} --help' for the options.)`);
    pointSubcommandsAtTheirHelp(command, name);
  }
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const benign = ['commander.helpDisplayed', 'commander.version'].includes(error.code);
      process.exitCode = benign ? EXIT_CODES.ok : EXIT_CODES.usage;
      return;
    }
    throw error;
  }
}

// `tslora serve --help | head` must not die with EPIPE.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

await main(process.argv);
