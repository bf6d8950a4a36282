/**
 * The logits drivers' side of the switch tests (cuda-pdl, cuda-side-expand, cuda-store-first): a driver script runs the
 * same steps in a child process under one environment (the engine reads its switches at model construction) and writes
 * every logit as raw float32 (writeLogitRows); the test compares two such runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/**
 * The prefill switch tests' model (cuda-store-first, cuda-wide-shrink): a 2-layer Llama-3.2-1B-shaped model with a 4096
 * vocabulary in DIR/model and 8 r16 adapters of every projection in DIR/adapters, made by the real `tslora synth`.
 */
export function synthPrefillModel(dir: string): { modelDir: string; adaptersDir: string } {
  const synth = (args: string[]) => {
    const r = spawnSync(process.execPath, ['bin/tslora.js', 'synth', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `tslora synth ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  };
  const modelDir = join(dir, 'model'), adaptersDir = join(dir, 'adapters');
  synth(['model', '--shape', 'llama-3.2-1b', '--layers', '2', '--vocab', '4096', '--out', modelDir]);
  synth(['adapters', '--model', modelDir, '--count', '8', '--rank', '16', '--targets', 'all', '--out', adaptersDir]);
  return { modelDir, adaptersDir };
}

/**
 * The prefill driver's logits (test/gpu/store-first-step-logits.ts: a 280-row prefill with 150- and 40-row adapter
 * segments and a base one, triton and csgmv chunks of 128, two decode steps) on one synthPrefillModel, one child run per
 * environment over this process's, in the order given; each run's report line goes to `t.diagnostic`.
 */
export function prefillStepLogits(t: { diagnostic(line: string): void }, prefix: string, runs: Record<string, NodeJS.ProcessEnv>): Float32Array[] {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const { modelDir, adaptersDir } = synthPrefillModel(dir);
    return Object.entries(runs).map(([label, env]) => {
      const { logits, line } = runLogitsDriver({ script: 'test/gpu/store-first-step-logits.ts', dir, label,
        env: { ...process.env, ...env }, args: [modelDir, adaptersDir] });
      t.diagnostic(line);
      return logits;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The skip of a cuda-parity-1b rerun: the GPU's, or the missing reference the device suite generates. */
export function parity1bRerunSkip(gpuSkip: string | false): string | false {
  return gpuSkip || (process.env.TSLORA_1B_REFERENCE ? false : 'TSLORA_1B_REFERENCE is not set (scripts/device/gpu-suite.sh generates it)');
}

/**
 * cuda-parity-1b (PyTorch + PEFT logits of the 1B shape) rerun in a child test process with `switches` over this
 * process's environment; asserts it ran and passed, and returns its tests / pass / fail / skipped counts for the report.
 */
export function rerunParity1b(switches: NodeJS.ProcessEnv, label: string): string {
  // Without NODE_TEST_CONTEXT (set for every test file node's runner starts): a child `node --test` that sees it skips
  // every file without a word and exits 0 (session 23's device call: both reruns printed nothing).
  const childEnv = { ...process.env, ...switches };
  delete childEnv.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', 'test/gpu/cuda-parity-1b.test.ts'], { encoding: 'utf8', env: childEnv });
  assert.equal(r.status, 0, `cuda-parity-1b with ${label}:\n${r.stdout.slice(-6000)}${r.stderr.slice(-2000)}`);
  assert.match(r.stdout, /^# fail 0$/m);
  assert.doesNotMatch(r.stdout, /^# pass 0$/m);
  return r.stdout.split('\n').filter((l) => /^# (tests|pass|fail|skipped)/.test(l)).join('; ');
}
