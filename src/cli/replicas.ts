/**
 * `tslora serve --replicas N`: starts N copies of the same `tslora serve` command on ports PORT..PORT+N-1 (all on
 * free ports with --port 0), prefixes their output with the replica number, forwards SIGINT/SIGTERM to each of them
 * (each drains as a single server does), and exits once all have exited: 0 when every replica stopped cleanly on a
 * signal. A replica that dies after start-up is reported and the others keep serving (the proxy in front routes
 * around it); one that fails during start-up stops the rest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { ServeConfig } from '../config/serve-config.js';
import { TsloraError } from '../errors.js';

interface Replica {
  index: number;
  proc: ChildProcess;
  listening: boolean;
  exit: Promise<number>;
}

function prefixLines(from: Readable, to: Writable, prefix: string, onLine: (line: string) => void): void {
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => {
    onLine(line);
    to.write(`${prefix}${line}\n`);
  });
}

export function replicaPorts(port: number, replicas: number): number[] {
  if (port !== 0 && port + replicas - 1 > 65535) {
    throw new TsloraError('usage', `--replicas ${replicas} from --port ${port} needs ports up to ${port + replicas - 1}, past 65535.`, { hint: 'Choose a lower --port.', param: 'replicas' });
  }
  return Array.from({ length: replicas }, (_, i) => (port === 0 ? 0 : port + i));
}

/** Runs the replicas until all have exited; resolves with the exit code for this process. */
export async function runReplicas(config: ServeConfig, entryScript: string, serveArgs: string[]): Promise<number> {
  const ports = replicaPorts(config.port, config.replicas);
  let stopping = false;
  const replicas: Replica[] = ports.map((port, index) => {
    // Later flags win in commander: each child is a single server on its own port. Each child gets its own
    // process group, so a terminal's Ctrl-C reaches only this process, which forwards it once (two SIGINTs would
    // make a replica exit without draining).
    const proc = spawn(process.execPath, [entryScript, ...serveArgs, '--replicas', '1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const replica: Replica = {
      index,
      proc,
      listening: false,
      exit: new Promise<number>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)))),
    };
    const prefix = `[replica ${index + 1}] `;
    prefixLines(proc.stdout!, process.stdout, prefix, (line) => {
      if (/listening on /.test(line)) replica.listening = true;
    });
    prefixLines(proc.stderr!, process.stderr, prefix, () => {});
    process.stdout.write(`tslora serve: replica ${index + 1} of ${ports.length}: pid ${proc.pid}, port ${port === 0 ? '(free)' : port}\n`);
    return replica;
  });
  const forward = (signal: NodeJS.Signals) => {
    stopping = true;
    const alive = replicas.filter((r) => r.proc.exitCode === null && r.proc.signalCode === null);
    process.stderr.write(`tslora serve: ${signal} received, stopping ${alive.length} replica${alive.length === 1 ? '' : 's'}.\n`);
    for (const r of alive) r.proc.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const codes = await Promise.all(
    replicas.map(async (r) => {
      const code = await r.exit;
      const alive = replicas.filter((o) => o.proc.exitCode === null && o.proc.signalCode === null).length;
      if (!stopping && !r.listening) {
        process.stderr.write(`tslora serve: replica ${r.index + 1} failed to start (exit ${code}); stopping the others.\n`);
        forward('SIGTERM');
      } else if (!stopping) {
        process.stderr.write(`tslora serve: replica ${r.index + 1} (pid ${r.proc.pid}) exited with ${code}; ${alive} still serving.\n`);
      }
      return code;
    }),
  );
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  return codes.every((c) => c === 0) ? 0 : codes.find((c) => c !== 0)!;
}
