/** Turns a zod failure into the 400 TsloraError the routes send: the message names the offending field. */
import type { z } from 'zod';
import { TsloraError } from '../errors.js';

export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = fieldPath(issue.path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as unknown as { keys: string[] }).keys;
    const where = field ? `${field}.` : '';
    message = `unknown field ${keys.map((k) => `'${where}${k}'`).join(', ')}`;
    throw new TsloraError('invalid_request', message, { param: `${where}${keys[0]}` });
  }
  throw new TsloraError('invalid_request', field ? `${field}: ${message}` : message, { param: field || undefined });
}
