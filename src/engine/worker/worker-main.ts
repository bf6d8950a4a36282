/** Entry point of the engine worker thread (spawned by ../engine.ts). */
import { parentPort } from 'node:worker_threads';
import { EngineCore } from './engine-core.js';
import type { FromWorker, ToWorker } from './messages.js';

if (!parentPort) throw new Error('worker-main must run in a worker thread');
const port = parentPort;
const core = new EngineCore((msg: FromWorker) => port.postMessage(msg));
port.on('message', (msg: ToWorker) => {
  void core.handle(msg);
});
