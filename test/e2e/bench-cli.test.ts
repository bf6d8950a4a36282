/** `tslora bench` and `tslora synth` through the real binary, for everything that needs no server. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tslora = (...args: string[]) => spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'tslora.js'), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });

test('bench --list and --dry-run describe the bundled experiments', () => {
  const list = tslora('bench', '--list');
  assert.equal(list.status, 0, list.stderr);
  for (const name of ['ci-smoke', 'triton-vs-csgmv', 'overlap-loading', 'adapter-sweep']) assert.match(list.stdout, new RegExp(`^${name}\\s`, 'm'));
  const dry = tslora('bench', 'overlap-loading', '--dry-run', '--requests', '3');
  assert.equal(dry.status, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as { runs: string[]; plan: { levels: { workload: { requests: number }; firstRequests: { adapter: string }[] }[] }[] };
  assert.deepEqual(plan.runs, ['overlap-off', 'overlap-off@churn', 'overlap-off@counter', 'overlap-on', 'overlap-on@churn', 'overlap-on@counter']);
  assert.equal(plan.plan[0].levels[0].workload.requests, 3);
  // distinct popularity: round-robin adapters
  assert.deepEqual(plan.plan[0].levels[0].firstRequests.map((r) => r.adapter), ['adapter-0', 'adapter-1', 'adapter-2']);
});

test('bench usage errors exit 2 with a message that says what to do', () => {
  const cases: [string[], RegExp][] = [
    [['bench', 'no-such-experiment'], /bench config 'no-such-experiment' not found\. Give a path .* ci-smoke/],
    [['bench', 'ci-smoke', '--check', 'csgmv.ttft_p50 <'], /--check "csgmv.ttft_p50 <": an operand is missing/],
    [['bench', 'ci-smoke', '--check', 'lora.ttft_p50 < 5'], /refers to run 'lora'.*Runs: triton, csgmv/],
    [['bench', 'ci-smoke', '--variants', 'cuda'], /--variants names cuda/],
    [['bench', 'ci-smoke', '--requests', 'many'], /--requests must be an integer \(got many\)/],
    [['bench', 'ci-smoke', '--requests', '0', '--dry-run'], /--requests must be at least 1/],
  ];
  for (const [args, pattern] of cases) {
    const run = tslora(...args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, pattern, args.join(' '));
  }
});

test('synth model and synth adapters write loadable folders', () => {
  const dir = mkdtempSync(join(tmpdir(), 'synth-cli-'));
  const model = tslora('synth', 'model', '--shape', 'llama-3.2-1b', '--layers', '1', '--vocab', '1024', '--dtype', 'f16', '--out', join(dir, 'm'));
  assert.equal(model.status, 0, model.stderr);
  assert.match(model.stdout, /llama-3\.2-1b, 1 layers, \d+ tensors/);
  const config = JSON.parse(readFileSync(join(dir, 'm', 'config.json'), 'utf8'));
  assert.deepEqual([config.hidden_size, config.num_hidden_layers, config.vocab_size, config.torch_dtype, config.tie_word_embeddings], [2048, 1, 1024, 'float16', true]);
  const adapters = tslora('synth', 'adapters', '--model', join(dir, 'm'), '--count', '2', '--rank', '4,8', '--targets', 'q_proj,down_proj', '--out', join(dir, 'a'));
  assert.equal(adapters.status, 0, adapters.stderr);
  assert.match(adapters.stdout, /^lora-0=.*\(rank 4,/m);
  assert.match(adapters.stdout, /^lora-1=.*\(rank 8,/m);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'a', 'lora-1', 'adapter_config.json'), 'utf8')).target_modules, ['q_proj', 'down_proj']);
  assert.ok(existsSync(join(dir, 'a', 'lora-0', 'adapter_model.safetensors')));

  const missing = tslora('synth', 'adapters', '--count', '2', '--out', join(dir, 'x'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /needs --model/);
  const badTarget = tslora('synth', 'adapters', '--model', join(dir, 'm'), '--targets', 'mlp', '--out', join(dir, 'y'));
  assert.equal(badTarget.status, 2);
  assert.match(badTarget.stderr, /unknown target module 'mlp'/);
  const badShape = tslora('synth', 'model', '--shape', 'gpt-5', '--out', join(dir, 'z'));
  assert.equal(badShape.status, 2);
  assert.match(badShape.stderr, /--shape must be one of llama-3\.1-8b, llama-3\.2-1b, qwen2\.5-0\.5b, tiny/);
});
