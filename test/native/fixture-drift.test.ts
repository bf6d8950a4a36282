// The committed fixtures are what their scripts write: scripts/make-fixtures.py (tiny Llama / Qwen2 / Qwen3 models,
// PEFT adapters, invalid adapters, references) and scripts/make-fixtures-rope.py (scaled-RoPE models and references)
// are run into a temporary directory with PyTorch + transformers + PEFT, and every file is compared with
// test/fixtures: weights, tokenizers and adapters byte for byte, JSON structurally (numbers within 2e-4: the
// references are rounded to 4–6 digits; transformers_version ignored). Skipped, with the reason, where python3 cannot
// import them (TSLORA_FIXTURE_PYTHON names another interpreter; .ci/run installs them from the local pip index).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, describe, it } from 'node:test';

const PYTHON = process.env.TSLORA_FIXTURE_PYTHON || 'python3';
const FIXTURES = 'test/fixtures';
const NUMBER_TOLERANCE = 2e-4;

function pythonProblem(): string | false {
  const probe = spawnSync(PYTHON, ['-c', 'import torch, transformers, peft, safetensors, tokenizers'], { encoding: 'utf8' });
  if (probe.status === 0) return false;
  const why = (probe.error?.message ?? probe.stderr.trim().split('\n').pop()) || `exit status ${probe.status}`;
  return `${PYTHON} cannot import torch, transformers and peft (${why}); install them from the local pip index or set TSLORA_FIXTURE_PYTHON`;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const entry of readdirSync(d).sort()) {
      const full = join(d, entry);
      if (statSync(full).isDirectory()) visit(full);
      else out.push(relative(dir, full));
    }
  };
  visit(dir);
  return out;
}

/** Differences between two parsed JSON values (up to `limit`), numbers within NUMBER_TOLERANCE. */
function jsonDifferences(a: unknown, b: unknown, path: string, out: string[], limit = 10): void {
  if (out.length >= limit) return;
  if (typeof a === 'number' && typeof b === 'number') {
    if (!(Math.abs(a - b) <= NUMBER_TOLERANCE)) out.push(`${path}: ${a} ≠ ${b}`);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) out.push(`${path}: ${a.length} entries ≠ ${b.length}`);
    else a.forEach((x, i) => jsonDifferences(x, b[i], `${path}[${i}]`, out, limit));
  } else if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((k) => k !== 'transformers_version'));
    for (const k of keys) jsonDifferences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, out, limit);
  } else if (a !== b) out.push(`${path}: ${JSON.stringify(a)?.slice(0, 80)} ≠ ${JSON.stringify(b)?.slice(0, 80)}`);
}

/** Every file the script wrote under `fresh` against the committed one under FIXTURES. */
function driftOf(fresh: string, subdirs: string[]): string[] {
  const problems: string[] = [];
  for (const sub of subdirs) {
    const written = filesUnder(join(fresh, sub));
    const committed = filesUnder(join(FIXTURES, sub));
    for (const f of written.filter((x) => !committed.includes(x))) problems.push(`${sub}/${f}: written by the script, not committed`);
    for (const f of committed.filter((x) => !written.includes(x))) problems.push(`${sub}/${f}: committed, no longer written by the script`);
    for (const f of written.filter((x) => committed.includes(x))) {
      const mine = readFileSync(join(fresh, sub, f));
      const theirs = readFileSync(join(FIXTURES, sub, f));
      if (f.endsWith('.json')) {
        const diffs: string[] = [];
        jsonDifferences(JSON.parse(mine.toString('utf8')), JSON.parse(theirs.toString('utf8')), '', diffs);
        problems.push(...diffs.map((d) => `${sub}/${f}${d}`));
      } else if (!mine.equals(theirs)) problems.push(`${sub}/${f}: bytes differ`);
    }
  }
  return problems;
}

const skip = pythonProblem();
const scratch = mkdtempSync(join(tmpdir(), 'tslora-fixture-drift-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('committed fixtures match a fresh run of their scripts', { skip, timeout: 3_600_000 }, () => {
  const run = (script: string, env: Record<string, string>, args: string[] = []) => {
    const r = spawnSync(PYTHON, [script, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
    assert.equal(r.status, 0, `${script} failed:\n${r.stderr.slice(-3000)}`);
  };

  it('scripts/make-fixtures.py: tiny-llama, tiny-qwen2, tiny-qwen3 (models, adapters, invalid adapters, references)', () => {
    const out = join(scratch, 'main');
    run('scripts/make-fixtures.py', { TSLORA_FIXTURES_OUT: out });
    const models = readdirSync(join(out, 'models'));
    assert.deepEqual(models.sort(), ['tiny-llama', 'tiny-qwen2', 'tiny-qwen3']);
    const problems = driftOf(out, models.map((m) => `models/${m}`));
    for (const m of models) {
      const diffs: string[] = [];
      jsonDifferences(JSON.parse(readFileSync(join(out, 'reference', `${m}.json`), 'utf8')), JSON.parse(readFileSync(join(FIXTURES, 'reference', `${m}.json`), 'utf8')), '', diffs);
      problems.push(...diffs.map((d) => `reference/${m}.json${d}`));
    }
    assert.deepEqual(problems, [], 'regenerate with `python3 scripts/make-fixtures.py` and commit, or fix the script');
  });

  it('scripts/make-fixtures-rope.py: rope-linear, rope-llama3', () => {
    const out = join(scratch, 'rope');
    run('scripts/make-fixtures-rope.py', {}, ['--out', out]);
    const problems = driftOf(out, ['models/rope-linear', 'models/rope-llama3']);
    const diffs: string[] = [];
    const fresh = JSON.parse(readFileSync(join(out, 'reference', 'rope-scaling.json'), 'utf8')) as Record<string, unknown>;
    const committed = JSON.parse(readFileSync(join(FIXTURES, 'reference', 'rope-scaling.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['torch', 'transformers']) delete fresh[key], delete committed[key];
    jsonDifferences(fresh, committed, '', diffs);
    problems.push(...diffs.map((d) => `reference/rope-scaling.json${d}`));
    assert.deepEqual(problems, [], 'regenerate with `python3 scripts/make-fixtures-rope.py` and commit, or fix the script');
  });
});
