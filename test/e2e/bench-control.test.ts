/**
 * `tslora bench` as a user drives it: --url against a running demo server runs the checks of the variant it measured
 * and warns about the others (exit 0, not 7); Ctrl-C (SIGINT to the bench process) writes the results measured so far,
 * marked partial, stops the server it launched on --port-base, and exits 130.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchResults } from '../../src/bench/report/results.js';
import { freePort } from '../../src/bench/server/launch.js';
import { REPO_ROOT, runCli, startServe } from './cli-run.js';

const listening = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });

test('bench --url runs the checks of the measured variant and warns about the rest', { timeout: 300_000 }, async () => {
  const server = await startServe(['--num-threads', '1']);
  assert.ok(server.url, server.stderr());
  try {
    const out = mkdtempSync(join(tmpdir(), 'bench-url-'));
    // ci-smoke checks "triton.errors == 0" and "csgmv.errors == 0"; --url measures triton only.
    const run = await runCli(['bench', 'ci-smoke', '--url', server.url, '--requests', '4', '--json', '--out', out,
      '--check', 'triton.errors == 0', '--check', 'csgmv.e2e_p50 < 1']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /runs triton →/, 'only the measured variant is planned (no csgmv that never comes)');
    assert.match(run.stderr, /warning: --url measures only 'triton'; check "csgmv.errors == 0" needs csgmv and is not evaluated/);
    assert.match(run.stderr, /warning: --url measures only 'triton'; check "csgmv.e2e_p50 < 1" needs csgmv and is not evaluated/);
    const results = JSON.parse(run.stdout) as BenchResults;
    assert.deepEqual(results.runIds, ['triton']);
    assert.deepEqual(results.checks.map((c) => [c.passed, c.message.startsWith('triton.errors == 0')]), [[true, true], [true, true]]);
    assert.equal(results.records.length, 4);
    assert.equal(results.partial, undefined);
  } finally {
    server.kill('SIGTERM');
    await server.exitCode;
  }
});

test('Ctrl-C writes the partial results, stops the launched server (on --port-base) and exits 130', { timeout: 300_000 }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'bench-sigint-'));
  const port = await freePort();
  const bench = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'tslora.js'), 'bench', 'ci-smoke', '--requests', '100000', '--no-dashboard',
    '--out', out, '--port-base', String(port), '--server-args', '--num-threads 1'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => bench.on('exit', (code) => resolve(code)));
  // SIGINT once a progress line shows finished requests of the measured phase.
  await new Promise<void>((resolve, reject) => {
    bench.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if ([...stderr.matchAll(/running (\d+)\/\d+ done/g)].some((m) => Number(m[1]) > 0)) resolve();
    });
    void exited.then((code) => reject(new Error(`bench exited (${code}) before measuring:\n${stderr}`)));
  });
  assert.ok(await listening(port), `the launched server listens on --port-base ${port}`);
  bench.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT: stopping; writing the results measured so far \(partial\)/);

  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResults;
  assert.ok(results.partial, 'results.json is marked partial');
  assert.ok(results.records.length > 0 && results.records.length < 100000, `${results.records.length} records`);
  assert.ok(results.records.every((r) => r.error === null), 'requests cut short are not counted as measured errors');
  assert.ok(existsSync(join(out, 'report.md')) && readFileSync(join(out, 'report.md'), 'utf8').includes('Partial results'));
  assert.equal(results.launches[0].argv.join(' ').includes(`--port ${port}`), true);
  // Only the first variant ran; the server it launched is gone (no listener, and its log ends with the shutdown).
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith('server-')), ['server-triton.log']);
  assert.equal(await listening(port), false, 'the launched server is stopped');
});
