/**
 * Start-up progress for `tslora serve`: one line per phase on stderr, with an ora spinner when stderr is a TTY.
 * The engine never logs; everything the user sees about start-up comes from here.
 */
import ora, { type Ora } from 'ora';
import type { LogLevel } from '../config/serve-config.js';

export class PhaseLogger {
  private readonly quiet: boolean;
  private readonly tty: boolean;
  private spinner: Ora | null = null;

  constructor(level: LogLevel) {
    this.quiet = level === 'warning' || level === 'error';
    // A pseudo-terminal without a size (columns 0) makes a spinner redraw endlessly: plain lines there.
    this.tty = Boolean(process.stderr.isTTY) && (process.stderr.columns ?? 0) > 0;
  }

  start(text: string): void {
    if (this.quiet) return;
    if (this.tty) this.spinner = ora({ text, stream: process.stderr }).start();
  }

  done(text: string): void {
    if (this.spinner) {
      this.spinner.succeed(text);
      this.spinner = null;
    } else if (!this.quiet) process.stderr.write(`tslora serve: ${text}\n`);
  }

  fail(): void {
    this.spinner?.fail();
    this.spinner = null;
  }

  /** Waits for a phase's promise; stops the spinner on failure. */
  async wrap<T>(promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      this.fail();
      throw error;
    }
  }

  line(text: string): void {
    this.spinner?.stop();
    process.stderr.write(`${text}\n`);
  }
}
