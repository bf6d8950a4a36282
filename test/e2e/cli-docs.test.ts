/**
 * The man pages and the README flag reference are generated from the option tables (scripts/gen-docs.ts) and
 * committed; this test regenerates them into a temporary directory and fails when the committed files drift.
 * It also renders man/tslora-serve.1 with `man -l` where man is installed (CI machines may lack it: then the roff
 * structure is checked instead).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { generateOptions, serveOptions } from '../../src/config/index.js';
import { REPO_ROOT } from './cli-run.js';

const PAGES = ['tslora.1', 'tslora-serve.1', 'tslora-adapter.1', 'tslora-bench.1'];

test('committed man pages and README flag reference match the option tables', () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-docs-'));
  try {
    execFileSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts/gen-docs.ts'), '--out', out], { cwd: REPO_ROOT, stdio: 'pipe' });
    for (const page of PAGES) {
      const committed = readFileSync(join(REPO_ROOT, 'man', page), 'utf8');
      assert.equal(readFileSync(join(out, 'man', page), 'utf8'), committed, `man/${page} is out of date: run \`npm run man\` and commit it`);
    }
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    assert.equal(readFileSync(join(out, 'README.md'), 'utf8'), readme, 'the README flag reference is out of date: run `npm run man`');
    for (const spec of [...serveOptions, ...generateOptions]) assert.ok(readme.includes(`\`--${spec.negatable ? '[no-]' : ''}${spec.flag}`), `README lacks --${spec.flag}`);
    const manual = readFileSync(join(REPO_ROOT, 'man/tslora.1'), 'utf8');
    for (const spec of generateOptions) assert.ok(manual.includes(spec.flag.replace(/-/g, '\\-')), `man/tslora.1 lacks --${spec.flag}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('README has the two set-up commands', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes('npm ci && npx tslora serve'));
  assert.ok(readme.includes('npm ci && npm test'));
  const ci = readFileSync(join(REPO_ROOT, '.ci/run'), 'utf8');
  assert.match(ci, /^npm ci && npm test$/m, '.ci/run runs exactly the README test command');
});

test('man/tslora-serve.1 renders and documents every serve flag', (t) => {
  const roff = readFileSync(join(REPO_ROOT, 'man/tslora-serve.1'), 'utf8');
  assert.match(roff, /^\.TH "TSLORA\\-SERVE" "1" /);
  for (const section of ['NAME', 'SYNOPSIS', 'OPTIONS', 'VALIDATION', 'EXIT STATUS']) assert.match(roff, new RegExp(`^\\.SH "?${section}"?$`, 'm'));
  const hasMan = spawnSync('man', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!hasMan) {
    t.diagnostic('man is not installed here: checked the roff structure only');
    for (const spec of serveOptions) assert.ok(roff.includes(spec.flag.replace(/-/g, '\\-')), `roff lacks ${spec.flag}`);
    return;
  }
  const rendered = spawnSync('man', ['-l', join(REPO_ROOT, 'man/tslora-serve.1')], {
    encoding: 'utf8',
    env: { ...process.env, MANPAGER: 'cat', PAGER: 'cat', MANWIDTH: '80', MAN_KEEP_FORMATTING: '' },
  });
  assert.equal(rendered.status, 0, rendered.stderr);
  assert.equal(rendered.stderr.trim(), '', 'no troff warnings');
  const text = rendered.stdout.replace(/.\x08/g, ''); // strip overstrike bold/underline
  assert.ok(text.startsWith('TSLORA-SERVE(1)'), text.slice(0, 200));
  const flat = text.replace(/‐\n\s*/g, '').replace(/\s+/g, ' ');
  for (const spec of serveOptions) assert.ok(flat.includes(`--${spec.negatable ? '[no-]' : ''}${spec.flag}`), `rendered page lacks --${spec.flag}`);
});
