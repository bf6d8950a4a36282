#!/usr/bin/env node
// Collects test files (Node 20's --test takes no globs) and runs them with node's own test runner through tsx.
// Usage: node scripts/run-tests.mjs [dir-or-file ...]   (default: test/unit test/native test/e2e test/gpu)
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passThrough = process.argv.slice(2).filter((a) => a.startsWith('--'));
const searchRoots = roots.length > 0 ? roots : ['test/unit', 'test/native', 'test/e2e', 'test/gpu'];

function collect(path, out) {
  if (!existsSync(path)) return;
  if (statSync(path).isFile()) { out.push(path); return; }
  for (const entry of readdirSync(path).sort()) {
    const full = join(path, entry);
    if (statSync(full).isDirectory()) collect(full, out);
    else if (/\.test\.(ts|tsx|mjs|js)$/.test(entry)) out.push(full);
  }
}

const files = [];
for (const root of searchRoots) collect(root, files);
if (files.length === 0) {
  console.error(`no test files under ${searchRoots.join(', ')}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...passThrough, ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
