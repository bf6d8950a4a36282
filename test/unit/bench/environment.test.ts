// Which commit a bench result names (src/bench/runner/environment.ts): an explicit TSLORA_GIT_COMMIT wins over the
// checkout's git, which on a copied tree can be another commit's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveCommit } from '../../../src/bench/runner/environment.js';

const fakeGit = (head: string | null, status: string | null) => {
  const calls: string[][] = [];
  const git = async (args: string[]) => {
    calls.push(args);
    return args[0] === 'rev-parse' ? head : status;
  };
  return { git, calls };
};

test('TSLORA_GIT_COMMIT names the commit even where git reports another one; dirty state unknown', async () => {
  const { git, calls } = fakeGit('d67a4d49f35dae1c6fef0b56bb2552c5844f61dd', ' M src/x.ts');
  assert.deepEqual(await resolveCommit('3e3ba0f', git), { commit: '3e3ba0f', dirty: null });
  assert.deepEqual(calls, [], 'git is not asked when the commit is named');
});

test('without TSLORA_GIT_COMMIT: git HEAD and whether tracked files changed', async () => {
  assert.deepEqual(await resolveCommit(undefined, fakeGit('abc123', '').git), { commit: 'abc123', dirty: false });
  assert.deepEqual(await resolveCommit('', fakeGit('abc123', ' M a.ts').git), { commit: 'abc123', dirty: true });
  assert.deepEqual(await resolveCommit(undefined, fakeGit('abc123', null).git), { commit: 'abc123', dirty: null });
});

test('no git and no TSLORA_GIT_COMMIT: unknown', async () => {
  assert.deepEqual(await resolveCommit(undefined, fakeGit(null, null).git), { commit: null, dirty: null });
});
