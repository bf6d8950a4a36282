/** Runs the real `tslora` binary (bin/tslora.js → dist/, built by `npx tsc`) and collects its output. */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without TSLORA_* variables of the calling shell, plus `extra`. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TSLORA_')) env[key] = value;
  return { ...env, ...extra };
}

export function runCli(args: string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  if (!existsSync(new URL('../../dist/cli/main.js', import.meta.url))) {
    throw new Error('dist/cli/main.js is missing: build first with `npx tsc -p tsconfig.json` (npm test does).');
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      // generous: on a loaded 2-core CI machine a plain node start can take seconds
      { env: cleanEnv(options.env ?? {}), cwd: options.cwd ?? REPO_ROOT, timeout: options.timeoutMs ?? 120_000 },
      (error, stdout, stderr) => {
        if (error?.killed) {
          resolve({ code: 124, stdout, stderr: `${stderr}\n[runCli: tslora ${args.join(' ')} timed out and was killed]` });
          return;
        }
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A `tslora serve` process started by a test; `url` is null when it exited (or timed out) before listening. */
export interface ServeProcess {
  url: string | null;
  exitCode: Promise<number | null>;
  stderr: () => string;
  kill: (signal: NodeJS.Signals) => void;
}

/** Starts `tslora serve --port 0 ...args` and resolves once it prints "listening on URL" (or exits). */
export function startServe(args: string[], timeoutMs = 120_000): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { cwd: REPO_ROOT, env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const exitCode = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const make = (url: string | null): ServeProcess => ({ url, exitCode, stderr: () => stderr, kill: (signal) => child.kill(signal) });
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(make(null)), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on (\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(make(match[1]));
      }
    });
    void exitCode.then(() => {
      clearTimeout(timer);
      resolve(make(null));
    });
  });
}
