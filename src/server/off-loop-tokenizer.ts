/**
 * Tokenization of large prompts on a separate thread: tokenizing megabytes takes seconds, during which the event
 * loop would answer nothing (not even /health). Small prompts are tokenized inline (a round trip costs more).
 * The thread loads its own copy of the model's tokenizer on first use and does not keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import { TsloraError } from '../errors.js';
import type { TokenizeReply } from './tokenizer-worker.js';

/** Texts longer than this (UTF-16 units) go to the tokenizer thread. */
export const OFF_LOOP_TOKENIZE_CHARS = 16 * 1024;

function spawn(dir: string): Worker {
  // Under tsx (tests importing src/) the sibling is a .ts file and the worker needs the tsx loader too.
  const fromSource = import.meta.url.endsWith('.ts');
  const url = new URL(`./tokenizer-worker.${fromSource ? 'ts' : 'js'}`, import.meta.url);
  if (!fromSource) return new Worker(url, { workerData: { dir } });
  const bootstrap = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: { dir } });
}

export class OffLoopTokenizer {
  private readonly dir: string;
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (ids: number[]) => void; reject: (e: Error) => void }>();

  /** dir: the tokenizer directory (tokenizer.json, tokenizer_config.json), as the model loader used it. */
  constructor(dir: string) {
    this.dir = dir;
  }

  encode(text: string, addSpecialTokens: boolean): Promise<number[]> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ id, text, addSpecialTokens });
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = spawn(this.dir);
    worker.unref();
    worker.on('message', (reply: TokenizeReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if ('ids' in reply) waiter.resolve(reply.ids);
      else waiter.reject(new TsloraError('internal', `tokenizing the prompt failed: ${reply.error}`));
    });
    const fail = (message: string) => {
      this.worker = null;
      for (const waiter of this.pending.values()) waiter.reject(new TsloraError('internal', message));
      this.pending.clear();
    };
    worker.on('error', (error) => fail(`the tokenizer thread failed: ${error.message}`));
    worker.on('exit', () => fail('the tokenizer thread stopped'));
    this.worker = worker;
    return worker;
  }

  close(): Promise<number> | undefined {
    const worker = this.worker;
    this.worker = null;
    return worker?.terminate();
  }
}
