/**
 * The logits drivers' side of the switch tests (cuda-pdl, cuda-side-expand, cuda-store-first): a driver script runs the
 * same steps in a child process under one environment (the engine reads its switches at model construction) and writes
 * every logit as raw float32 (writeLogitRows); the test compares two such runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs `node --import tsx SCRIPT OUT_FILE ...args` with env and returns the logits it wrote and its report line. */
export function runLogitsDriver(opts: { script: string; dir: string; label: string; env: NodeJS.ProcessEnv; args?: string[] }): { logits: Float32Array; line: string } {
  const file = join(opts.dir, `logits-${opts.label}.bin`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', opts.script, file, ...(opts.args ?? [])], { encoding: 'utf8', env: opts.env });
  assert.equal(r.status, 0, `${opts.label}:\n${r.stdout}${r.stderr}`);
  const bytes = readFileSync(file);
  return { logits: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4), line: `${opts.label}: ${r.stdout.trim()}` };
}

/** How many values differ bitwise (Object.is: -0 and +0 differ, NaN equals NaN). */
export function countDiffering(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}
