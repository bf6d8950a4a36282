/**
 * Reads a JSON request body with a size cap (checked against Content-Length first, then while reading); malformed
 * JSON is a 400. The cap bounds what JSON.parse does on the event loop.
 */
import type { IncomingMessage } from 'node:http';
import { TsloraError } from '../../errors.js';

export const MAX_BODY_BYTES = 16 * 1024 * 1024;

function tooLarge(): TsloraError {
  return new TsloraError('invalid_request', `the request body exceeds ${MAX_BODY_BYTES} bytes, the most this server reads`);
}

export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
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
