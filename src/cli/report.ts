/** How the CLI shows failures: one line on stderr ("tslora <command>: error: message hint") and an exit code. */
import { TsloraError, exitCodeForCode, toTsloraError } from '../errors.js';

export function reportError(command: string, error: unknown): number {
  const err = (error as { usageError?: boolean }).usageError
    ? new TsloraError('usage', (error as Error).message)
    : toTsloraError(error);
  process.stderr.write(`tslora ${command}: error: ${err.describe()}\n`);
  return exitCodeForCode(err.code);
}
