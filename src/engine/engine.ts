/**
 * The engine facade on the server's thread. The engine itself (runner + scheduler) runs in a worker thread so
 * that HTTP stays responsive during long forward steps; this class forwards requests and adapter operations to
 * it and routes the token updates back to per-request listeners.
 */
import { Worker } from 'node:worker_threads';
import { TsloraError, type TsloraErrorCode } from '../errors.js';
import type { AdapterSpec } from './model/types.js';
import type { EngineRequest, EngineStats, EngineStepTiming, TokenUpdate } from './types.js';
import type { EngineInfo, EngineInit, FromWorker, ToWorker, WireError } from './worker/messages.js';

export type { EngineInfo, EngineInit } from './worker/messages.js';
export type UpdateListener = (update: TokenUpdate) => void;

function toError(e: WireError): TsloraError {
  return new TsloraError(e.code as TsloraErrorCode, e.message, { hint: e.hint });
}

function spawnWorker(): Worker {
  // Under tsx (tests importing src/) the sibling is a .ts file and the worker needs the tsx loader too.
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./worker/worker-main.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource) return new Worker(url);
  const bootstrap = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true });
}

export class Engine {
  readonly info: EngineInfo;
  private readonly worker: Worker;
  private readonly listeners = new Map<string, UpdateListener>();
  private readonly ops = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextOpId = 1;
  private exited = false;
  /** Called with the timings of the forward steps the worker ran (after their updates were delivered). */
  onStepTimings: ((steps: EngineStepTiming[]) => void) | null = null;
  /** Called once if the worker stops without close() (a crash); the server then reports itself unhealthy. */
  onUnexpectedExit: (() => void) | null = null;
  private closing = false;

  private constructor(worker: Worker, info: EngineInfo) {
    this.worker = worker;
    this.info = info;
    worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    worker.on('exit', () => {
      this.exited = true;
      if (!this.closing) this.onUnexpectedExit?.();
      for (const [rid, listener] of this.listeners) listener({ rid, tokenIds: [], finish: { type: 'abort', message: 'the engine stopped' } });
      this.listeners.clear();
      for (const op of this.ops.values()) op.reject(new TsloraError('internal', 'the engine stopped'));
      this.ops.clear();
    });
  }

  static start(init: EngineInit): Promise<Engine> {
    const worker = spawnWorker();
    return new Promise((resolve, reject) => {
      const onMessage = (msg: FromWorker) => {
        if (msg.type === 'ready') {
          worker.off('message', onMessage);
          worker.off('error', onError);
          resolve(new Engine(worker, msg.info));
        } else if (msg.type === 'initFailed') {
          worker.off('message', onMessage);
          void worker.terminate();
          reject(toError(msg.error));
        }
      };
      const onError = (error: Error) => reject(new TsloraError('internal', `the engine worker failed: ${error.message}`, { cause: error }));
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.postMessage({ type: 'init', init } satisfies ToWorker);
    });
  }

  submit(req: EngineRequest, listener: UpdateListener): void {
    if (this.exited) {
      listener({ rid: req.rid, tokenIds: [], finish: { type: 'abort', message: 'the engine stopped' } });
      return;
    }
    this.listeners.set(req.rid, listener);
    this.send({ type: 'submit', req });
  }

  /** Cancels a request; no further updates reach its listener. */
  abort(rid: string): void {
    if (!this.listeners.delete(rid)) return;
    this.send({ type: 'abort', rid });
  }

  loadAdapter(id: string, adapter: AdapterSpec, pinned: boolean): Promise<{ sizeBytes: number }> {
    return this.op((opId) => ({ type: 'loadAdapter', opId, id, adapter, pinned })) as Promise<{ sizeBytes: number }>;
  }

  freeAdapter(id: string): Promise<void> {
    return this.op((opId) => ({ type: 'freeAdapter', opId, id })) as Promise<void>;
  }

  setPinned(id: string, pinned: boolean): Promise<void> {
    return this.op((opId) => ({ type: 'setPinned', opId, id, pinned })) as Promise<void>;
  }

  stats(): Promise<EngineStats> {
    return this.op((opId) => ({ type: 'stats', opId })) as Promise<EngineStats>;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    this.closing = true;
    try {
      await this.op((opId) => ({ type: 'shutdown', opId }));
    } finally {
      await this.worker.terminate();
    }
  }

  private op(build: (opId: number) => ToWorker): Promise<unknown> {
    if (this.exited) return Promise.reject(new TsloraError('shutting_down', 'the engine has stopped'));
    const opId = this.nextOpId++;
    return new Promise((resolve, reject) => {
      this.ops.set(opId, { resolve, reject });
      this.send(build(opId));
    });
  }

  private send(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'updates') {
      for (const update of msg.updates) {
        const listener = this.listeners.get(update.rid);
        if (!listener) continue;
        if (update.finish) this.listeners.delete(update.rid);
        listener(update);
      }
      if (msg.steps && msg.steps.length > 0) this.onStepTimings?.(msg.steps);
    } else if (msg.type === 'opDone') {
      const op = this.ops.get(msg.opId);
      if (!op) return;
      this.ops.delete(msg.opId);
      if (msg.error) op.reject(toError(msg.error));
      else op.resolve(msg.result);
    }
  }
}
