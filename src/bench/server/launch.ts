/**
 * Launches `tslora serve` for one variant (node bin/tslora.js serve --port <free port> ...), waits for /health,
 * and stops it again. Server output goes to a log file next to the results; a server that dies during start-up
 * fails the variant with the tail of that log.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { request } from 'undici';
import { TsloraError } from '../../errors.js';
import { PACKAGE_ROOT } from '../config/load-config.js';
import type { FlagSet } from '../config/schema.js';

export interface LaunchedServer {
  baseUrl: string;
  /** full command line, for the results' environment record */
  argv: string[];
  logPath: string;
  stop(): Promise<void>;
}

export function flagsToArgs(flags: FlagSet): string[] {
  const args: string[] = [];
  for (const [flag, value] of Object.entries(flags)) {
    if (value === true) args.push(`--${flag}`);
    else if (value === false) args.push(`--no-${flag}`);
    else if (Array.isArray(value)) args.push(`--${flag}`, ...value.map(String));
    else args.push(`--${flag}`, String(value));
  }
  return args;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export async function isHealthy(baseUrl: string): Promise<boolean> {
  try {
    const response = await request(`${baseUrl}/health`, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  }
}

function logTail(path: string, lines = 25): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function launchServer(options: {
  args: string[];
  logDir: string;
  name: string;
  startupTimeoutMs: number;
  /** the port to listen on (--port-base); a free one when absent */
  port?: number;
  /** aborts the start-up wait (Ctrl-C): the child is stopped and the launch fails */
  signal?: AbortSignal;
}): Promise<LaunchedServer> {
  const port = options.port ?? (await freePort());
  const baseUrl = `http://127.0.0.1:${port}`;
  const argv = [join(PACKAGE_ROOT, 'bin', 'tslora.js'), 'serve', '--host', '127.0.0.1', '--port', String(port), ...options.args];
  const logPath = join(options.logDir, `server-${options.name}.log`);
  writeFileSync(logPath, `# node ${argv.join(' ')}\n`);
  const child = execa(process.execPath, argv, {
    stdin: 'ignore',
    stdout: { file: logPath, append: true },
    stderr: { file: logPath, append: true },
    reject: false,
    cleanup: true,
    env: { FORCE_COLOR: '0' },
  });
  let exited = false;
  void child.then(() => {
    exited = true;
  });

  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([child.then(() => true), sleep(10_000).then(() => false)]);
    if (!killed) {
      child.kill('SIGKILL');
      await child;
    }
  };

  const deadline = Date.now() + options.startupTimeoutMs;
  while (Date.now() < deadline) {
    if (options.signal?.aborted) {
      await stop();
      throw new TsloraError('server_error', `start-up of tslora serve for variant '${options.name}' was interrupted`);
    }
    if (exited) {
      throw new TsloraError('server_error', `tslora serve for variant '${options.name}' exited during start-up:\n${logTail(logPath)}`, {
        hint: `Command: node ${argv.join(' ')}`,
      });
    }
    if (await isHealthy(baseUrl)) return { baseUrl, argv: ['node', ...argv], logPath, stop };
    await sleep(250);
  }
  await stop();
  throw new TsloraError('server_error', `tslora serve for variant '${options.name}' did not answer /health within ${options.startupTimeoutMs / 1000} s:\n${logTail(logPath)}`, {
    hint: 'Raise --startup-timeout for big models.',
  });
}
