/** Entry point of the tokenizer thread (spawned by off-loop-tokenizer.ts): tokenizes large prompts off the event loop. */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from '../engine/model/tokenizer.js';

export interface TokenizeRequest {
  id: number;
  text: string;
  addSpecialTokens: boolean;
}
export type TokenizeReply = { id: number; ids: number[] } | { id: number; error: string };

if (!parentPort) throw new Error('tokenizer-worker must run in a worker thread');
const port = parentPort;
const loaded = loadTokenizer((workerData as { dir: string }).dir);
port.on('message', (msg: TokenizeRequest) => {
  loaded.then(
    ({ tokenizer }) => port.postMessage({ id: msg.id, ids: tokenizer.encode(msg.text, { addSpecialTokens: msg.addSpecialTokens }) } satisfies TokenizeReply),
    (error: unknown) => port.postMessage({ id: msg.id, error: error instanceof Error ? error.message : String(error) } satisfies TokenizeReply),
  );
});
