/**
 * Starts real `tslora serve` processes for the server e2e tests (port 0, URL read from stdout) and offers small
 * HTTP helpers: JSON POST/GET, SSE reading, and the PEFT reference outputs of the fixture models.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createParser } from 'eventsource-parser';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));
export const FIXTURE = (model: string) => fileURLToPath(new URL(`../fixtures/models/${model}`, import.meta.url));
export const ADAPTER = (model: string, name: string) => `${FIXTURE(model)}/adapters/${name}`;
export const INVALID_ADAPTER = (model: string, name: string) => `${FIXTURE(model)}/invalid-adapters/${name}`;

export interface ReferenceRun {
  greedy: number[];
}
export interface Reference {
  prompts: number[][];
  eosTokenIds: number[];
  base: ReferenceRun[];
  adapters: Array<{ name: string; prompts: ReferenceRun[] }>;
  mixedBatches: Array<{ adapters: string[]; prompts: number[][]; greedy: number[][] }>;
  greedyTokens: number;
}

export function reference(model: string): Reference {
  return JSON.parse(readFileSync(fileURLToPath(new URL(`../fixtures/reference/${model}.json`, import.meta.url)), 'utf8')) as Reference;
}

export interface Server {
  url: string;
  proc: ChildProcess;
  output: () => string;
  /** SIGTERM once (idempotent) and wait for the exit status. */
  stop: () => Promise<number | null>;
}

export async function startServer(args: string[], timeoutMs = 60_000): Promise<Server> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--num-threads', '1', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${out}`));
    });
  });
  let signaled = false;
  return {
    url,
    proc,
    output: () => out,
    stop: async () => {
      if (!signaled && proc.exitCode === null) {
        signaled = true;
        proc.kill('SIGTERM');
      }
      return exited;
    },
  };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** POSTs and reads an SSE stream; returns every data payload (parsed JSON, or the raw string such as [DONE]). */
export async function postStream(url: string, body: unknown, onEvent?: (data: any, atMs: number) => void, signal?: AbortSignal): Promise<any[]> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
  if (!res.ok) throw new Error(`stream request failed: ${res.status} ${await res.text()}`);
  const events: any[] = [];
  const parser = createParser({
    onEvent: (e) => {
      let data: unknown = e.data;
      try {
        data = JSON.parse(e.data);
      } catch {
        /* [DONE] */
      }
      events.push(data);
      onEvent?.(data, performance.now());
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }));
  return events;
}

export const greedy = (maxNewTokens: number, extra: Record<string, unknown> = {}) => ({ max_new_tokens: maxNewTokens, temperature: 0, ignore_eos: true, ...extra });
