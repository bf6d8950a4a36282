// `tslora generate` against a real `tslora serve` with the embedded demo model: the `tslora generate` line the
// server prints at start-up (parsed from its output, so the printed text itself is tested) answers one batch with
// three adapters; --json, --stream, stdin prompts, --lora base, an unknown adapter (exit 4) and an unreachable
// server (exit 3).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { TASKS } from './demo-tasks.js';
import { runCli, type CliResult } from './cli-run.js';
import { startServer, type Server } from './server-harness.js';
import { unusedPort } from '../unit/client/stub-server.js';

const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));
const answer = (name: string | null, prompt: string): string => TASKS[name ?? 'echo'].answer(prompt.replace(/=$/, ''));

/** Splits a printed shell line into words (double-quoted words with \-escapes, or bare words). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = pattern.exec(line); m; m = pattern.exec(line)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return words;
}

/** Runs tslora with `input` on stdin (runCli leaves stdin open, which a stdin-reading command would wait on). */
function runWithStdin(args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('tslora generate against the demo server', { timeout: 240_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer([], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('the printed tslora generate line answers one batch with three adapters', async () => {
    const line = server.output().split('\n').find((l) => l.trim().startsWith('tslora generate'));
    assert.ok(line, `no tslora generate example in the start-up output:\n${server.output()}`);
    const words = shellWords(line.trim());
    assert.deepEqual(words.slice(0, 2), ['tslora', 'generate']);
    assert.equal(words[words.indexOf('--url') + 1], server.url, 'the printed line names the server URL');
    const loras = words.filter((_w, i) => words[i - 1] === '--lora');
    assert.deepEqual(loras, ['add', 'caesar', 'last_word']);
    const res = await runCli(words.slice(1));
    assert.equal(res.code, 0, res.stderr);
    assert.equal(
      res.stdout,
      '[add] 12+30= → 42\n[caesar] attack at dawn= → dwwdfn dw gdzq\n[last_word] the quick brown fox= → fox\n',
    );
  });

  it('--json prints the server response array; --lora base and - mean the base model', async () => {
    const prompts = ['Hi there!=', 'hello world=', 'xyz abc='];
    const res = await runCli(['generate', ...prompts, '--lora', 'base', '--lora', 'reverse', '--lora', '-', '--json', '--url', server.url]);
    assert.equal(res.code, 0, res.stderr);
    const items = JSON.parse(res.stdout) as Array<{ text: string; meta_info: { lora_name: string | null; finish_reason: { type: string } } }>;
    assert.equal(items.length, 3);
    assert.deepEqual(items.map((i) => i.text), [answer(null, prompts[0]), answer('reverse', prompts[1]), answer(null, prompts[2])]);
    assert.deepEqual(items.map((i) => i.meta_info.lora_name ?? null), [null, 'reverse', null]);
    assert.equal(items[1].meta_info.finish_reason.type, 'stop');
  });

  it('--stream prints one prompt as it arrives, and several prompts line by line', async () => {
    const one = await runCli(['generate', 'make me loud=', '--lora', 'upper', '--stream', '--url', server.url]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, `[upper] make me loud= → ${answer('upper', 'make me loud=')}\n`);
    const many = await runCli(['generate', '4096=', '999+1=', '--lora', 'spell', '--lora', 'add', '--stream', '--url', server.url]);
    assert.equal(many.code, 0, many.stderr);
    const lines = many.stdout.trim().split('\n').sort();
    assert.deepEqual(lines, [`[add] 999+1= → ${answer('add', '999+1=')}`, `[spell] 4096= → ${answer('spell', '4096=')}`]);
    const events = await runCli(['generate', 'abc=', '--lora', 'reverse', '--stream', '--json', '--url', server.url]);
    assert.equal(events.code, 0, events.stderr);
    const parsed = events.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; meta_info: { finish_reason: unknown } });
    assert.ok(parsed.length > 1, 'several SSE events, one JSON line each');
    assert.equal(parsed.at(-1)!.text, answer('reverse', 'abc='));
    assert.ok(parsed.slice(0, -1).every((e) => e.meta_info.finish_reason === null));
  });

  it('reads prompts from stdin, one per line, with a single --lora for all', async () => {
    const res = await runWithStdin(['generate', '--lora', 'spell', '--url', server.url], '4096=\n\n17=\n');
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `[spell] 4096= → ${answer('spell', '4096=')}\n[spell] 17= → ${answer('spell', '17=')}\n`);
    const none = await runWithStdin(['generate', '--url', server.url], '\n');
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /tslora generate: error: no prompt given/);
  });

  it('an unknown adapter exits 4 with the server message; a prompt the server refuses exits 5; too many --lora exits 2', async () => {
    const res = await runCli(['generate', 'hi=', '--lora', 'nope', '--url', server.url]);
    assert.equal(res.code, 4, res.stderr);
    assert.match(res.stderr, /adapter 'nope' is not loaded/);
    const streamed = await runCli(['generate', 'hi=', '--lora', 'nope', '--stream', '--url', server.url]);
    assert.equal(streamed.code, 4, streamed.stderr);
    assert.equal(streamed.stdout, '');
    // a prompt past the demo's 128-token context: only the server can tell (out-of-range flags are usage errors)
    const rejected = await runCli(['generate', `${'1'.repeat(200)}=`, '--url', server.url]);
    assert.equal(rejected.code, 5, rejected.stderr);
    assert.match(rejected.stderr, /context/);
    const usage = await runCli(['generate', 'a=', '--lora', 'add', '--lora', 'spell', '--url', server.url]);
    assert.equal(usage.code, 2, usage.stderr);
    assert.match(usage.stderr, /--lora was given 2 times but there is 1 prompt/);
  });
});

it('tslora generate against a port where nothing listens exits 3', async () => {
  const res = await runCli(['generate', 'hi=', '--url', `http://127.0.0.1:${await unusedPort()}`]);
  assert.equal(res.code, 3, res.stderr);
  assert.match(res.stderr, /cannot reach the tslora server/);
});
