/**
 * Pieces of the multi-replica e2e: free ports, `tslora serve --replicas N` with the replica pids it prints, the
 * shipped HAProxy configuration started in the foreground, and per-replica counts from /metrics.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { REPO, get } from './server-harness.js';

const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));
export const HAPROXY_CONFIG = fileURLToPath(new URL('../../deploy/haproxy/tslora.cfg', import.meta.url));

/** haproxy on PATH, or where Debian installs it when /usr/sbin is not on PATH; null when absent. */
const HAPROXY = ['haproxy', '/usr/sbin/haproxy'].find((bin) => spawnSync(bin, ['-v']).error === undefined) ?? null;
export const haproxyMissing = HAPROXY === null;

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A free port whose next `count - 1` ports are free too. */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    let ok = port + count - 1 <= 65535;
    for (let i = 1; ok && i < count; i++) ok = await canBind(port + i);
    if (ok) return port;
  }
  throw new Error(`no run of ${count} free ports found`);
}

export interface Replicas {
  proc: ChildProcess;
  pids: number[];
  output: () => string;
  exited: Promise<number | null>;
}

/** `tslora serve --replicas N --port BASE ...` in a process group of its own (as in a terminal); resolves once every replica listens. */
export async function startReplicas(count: number, basePort: number, args: string[]): Promise<Replicas> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--replicas', String(count), '--port', String(basePort), '--num-threads', '1', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if ((out.match(/listening on /g) ?? []).length === count) resolve();
    });
    void exited.then((code) => reject(new Error(`serve --replicas exited with ${code} before all replicas listened:\n${out}`)));
  });
  const pids = [...out.matchAll(/replica (\d+) of \d+: pid (\d+)/g)].sort((a, b) => Number(a[1]) - Number(b[1])).map((m) => Number(m[2]));
  return { proc, pids, output: () => out, exited };
}

export interface Proxy {
  proc: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

export async function startHaproxy(bindPort: number, replicaPorts: number[]): Promise<Proxy> {
  const env = { ...process.env, TSLORA_PROXY_BIND: `127.0.0.1:${bindPort}` } as Record<string, string>;
  replicaPorts.forEach((port, i) => (env[`TSLORA_REPLICA_${i + 1}`] = `127.0.0.1:${port}`));
  const proc = spawn(HAPROXY!, ['-db', '-f', HAPROXY_CONFIG], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  for (let attempt = 0; ; attempt++) {
    const health = await get(`http://127.0.0.1:${bindPort}/health`).catch(() => null);
    if (health?.status === 200) break;
    if (attempt === 200 || proc.exitCode !== null) throw new Error(`haproxy did not answer /health:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    proc,
    output: () => out,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string> }>;
}

export async function scrapeFamilies(url: string): Promise<Map<string, Family>> {
  const text = (await get(`${url}/metrics`)).body as string;
  return new Map((parsePrometheusTextFormat(text) as Family[]).map((f) => [f.name, f]));
}

/** model_name → tslora_requests_total on one replica. */
export async function requestsByModel(url: string): Promise<Map<string, number>> {
  const family = (await scrapeFamilies(url)).get('tslora_requests_total');
  return new Map((family?.metrics ?? []).map((m) => [m.labels!.model_name, Number(m.value)]));
}
