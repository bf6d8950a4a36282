/** Turns a zod failure into the 400 TsloraError the routes send: the message names the offending field. */
import type { z } from 'zod';
import { TsloraError } from '../errors.js';

export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

type Issue = z.core.$ZodIssue;

/**
 * A union with no message of its own ("Invalid input") says nothing useful; the branch that got furthest does
 * (sampling_params.stop: at most 64 stop strings). Type mismatches mark the branches the value was not meant for.
 */
function specificIssue(issue: Issue, base: PropertyKey[] = []): { issue: Issue; path: PropertyKey[] } {
  const path = [...base, ...issue.path];
  if (issue.code !== 'invalid_union' || issue.message !== 'Invalid input') return { issue, path };
  const candidates = issue.errors.flatMap((branch) => branch.map((inner) => specificIssue(inner, path)));
  candidates.sort((a, b) => Number(a.issue.code === 'invalid_type') - Number(b.issue.code === 'invalid_type') || b.path.length - a.path.length);
  return candidates[0] ?? { issue, path };
}

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const { issue, path } = specificIssue(result.error.issues[0]);
  const field = fieldPath(path);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as unknown as { keys: string[] }).keys;
    const where = field ? `${field}.` : '';
    message = `unknown field ${keys.map((k) => `'${where}${k}'`).join(', ')}`;
    throw new TsloraError('invalid_request', message, { param: `${where}${keys[0]}` });
  }
  throw new TsloraError('invalid_request', field ? `${field}: ${message}` : message, { param: field || undefined });
}
