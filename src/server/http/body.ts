/** Reads a JSON request body with a size cap; malformed JSON is a 400. */
import type { IncomingMessage } from 'node:http';
import { TsloraError } from '../../errors.js';

const MAX_BODY_BYTES = 64 * 1024 * 1024;

export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new TsloraError('invalid_request', `request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new TsloraError('invalid_request', 'request body is empty; send a JSON object');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TsloraError('invalid_request', `request body is not valid JSON: ${(error as Error).message}`);
  }
}
