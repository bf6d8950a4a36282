/**
 * A small stand-in for a tslora server's adapter admin API (spec b.3-b.5), built on node:http. It keeps a real
 * registry (name → path, pinned), records every request, and answers with the spec's bodies and statuses.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

export interface StubOptions {
  apiKey?: string;
  /** Serve POST /pin_lora_adapter (tslora extension); false = behave like SGLang (404). */
  pinRoute?: boolean;
  /** Report `pinned` on adapter cards of /v1/models. */
  pinnedOnCards?: boolean;
  maxLorasPerBatch?: number;
  servedModelName?: string;
  /** Paths that "exist" on the server; others get not_found. Default: every path. */
  existingPaths?: string[];
}

export interface StubServer {
  url: string;
  requests: RecordedRequest[];
  adapters: Map<string, { path: string; pinned: boolean }>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      try {
        resolve(text ? JSON.parse(text) : null);
      } catch {
        resolve(text);
      }
    });
  });
}

export async function startStubServer(options: StubOptions = {}): Promise<StubServer> {
  const adapters = new Map<string, { path: string; pinned: boolean }>();
  const requests: RecordedRequest[] = [];
  const slots = options.maxLorasPerBatch ?? 8;
  const served = options.servedModelName ?? 'demo';

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const loaded = (): Record<string, string> => Object.fromEntries([...adapters].map(([name, a]) => [name, a.path]));
  const ok = (res: ServerResponse): void => send(res, 200, { success: true, error_message: null, error_code: null, loaded_adapters: loaded() });
  const fail = (res: ServerResponse, code: string, message: string): void =>
    send(res, 400, { success: false, error_message: message, error_code: code, loaded_adapters: loaded() });
  const pinnedCount = (): number => [...adapters.values()].filter((a) => a.pinned).length;
  const starved = (name: string): string =>
    `cannot pin '${name}': ${pinnedCount()} of ${slots} slots are already pinned; pinning every slot would starve base and unpinned requests.`;

  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const path = (req.url ?? '/').split('?')[0];
      requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
      if (options.apiKey && path !== '/health' && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        return send(res, 401, { error: { message: 'invalid or missing API key' } });
      }
      const record = (body ?? {}) as Record<string, unknown>;
      const name = typeof record.lora_name === 'string' ? record.lora_name.trim() : '';
      if (req.method === 'POST' && path === '/load_lora_adapter') {
        if (!name || typeof record.lora_path !== 'string') return fail(res, 'invalid_request', 'lora_name and lora_path must be non-empty strings');
        const existing = adapters.get(name);
        if (existing) return fail(res, 'already_loaded', `adapter '${name}' is already loaded (path ${existing.path}); unload it first or choose another name`);
        if (options.existingPaths && !options.existingPaths.includes(record.lora_path)) {
          return fail(res, 'not_found', `no PEFT LoRA adapter at '${record.lora_path}': adapter_config.json not found`);
        }
        if (record.pinned === true && pinnedCount() >= slots - 1) return fail(res, 'pinned_limit', starved(name));
        adapters.set(name, { path: record.lora_path, pinned: record.pinned === true });
        return ok(res);
      }
      if (req.method === 'POST' && path === '/unload_lora_adapter') {
        if (!adapters.delete(name)) {
          return fail(res, 'not_loaded', `adapter '${name}' is not loaded. Loaded adapters: ${[...adapters.keys()].join(', ') || 'none'}`);
        }
        return ok(res);
      }
      if (req.method === 'POST' && path === '/pin_lora_adapter' && options.pinRoute !== false) {
        const adapter = adapters.get(name);
        if (!adapter) return fail(res, 'not_loaded', `adapter '${name}' is not loaded. Loaded adapters: ${[...adapters.keys()].join(', ') || 'none'}`);
        if (record.pinned === true && !adapter.pinned && pinnedCount() >= slots - 1) return fail(res, 'pinned_limit', starved(name));
        adapter.pinned = record.pinned === true;
        return ok(res);
      }
      if (req.method === 'GET' && path === '/v1/models') {
        const cards = [
          { id: served, object: 'model', created: 1, owned_by: 'tslora', root: served, parent: null, max_model_len: 2048 },
          ...[...adapters].map(([id, a]) => ({
            id, object: 'model', created: 1, owned_by: 'tslora', root: a.path, parent: served, max_model_len: null,
            ...(options.pinnedOnCards ? { pinned: a.pinned } : {}),
          })),
        ];
        return send(res, 200, { object: 'list', data: cards });
      }
      return send(res, 404, { error: { message: `no route ${req.method} ${path}` } });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    adapters,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A port on which nothing listens (bound, then released). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
