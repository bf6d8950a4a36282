/** How the CLI shows failures: one line on stderr ("tslora <command>: error: message hint") and an exit code. */
import { HELP_POINTER } from '../config/coerce.js';
import { EXIT_CODES, TsloraError, exitCodeForCode, toTsloraError, type TsloraErrorCode } from '../errors.js';

/** Message and hint as one text, with a full stop between them (server messages may lack one). */
export function describeError(err: TsloraError): string {
  if (!err.hint) return err.message;
  const message = /[.!?:)]$/.test(err.message.trim()) ? err.message.trim() : `${err.message.trim()}.`;
  return `${message} ${err.hint}`;
}

/**
 * Exit status of the adapter commands: an adapter path the server cannot find (not_found) shares status 4 with
 * an adapter name that is not loaded; both mean "nothing there by that name or path".
 */
export function adapterExitCode(code: TsloraErrorCode): number {
  return code === 'not_found' ? EXIT_CODES.notLoaded : exitCodeForCode(code);
}

/** Prints the failure and returns its exit status (exitCodeForCode unless the command maps codes itself). */
export function reportError(command: string, error: unknown, exitCodeOf: (code: TsloraErrorCode) => number = exitCodeForCode): number {
  const err = (error as { usageError?: boolean }).usageError
    ? new TsloraError('usage', (error as Error).message)
    : toTsloraError(error);
  const text = describeError(err).split(HELP_POINTER).join(`See 'tslora ${command} --help'`);
  const status = exitCodeOf(err.code);
  // A refusal by the server carries its error_code (README, man EXIT STATUS): scripts can match on it in text mode too.
  const serverCode = status === EXIT_CODES.rejected || status === EXIT_CODES.notLoaded ? ` (error_code: ${err.code})` : '';
  process.stderr.write(`tslora ${command}: error: ${text}${serverCode}\n`);
  return status;
}
