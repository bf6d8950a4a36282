// What a new user meets on the demo model, through the real binary and HTTP: every command the start-up banner
// prints runs as printed (with --api-key: the key is passed everywhere), its wording counts the adapters it
// uses, GET /v1/models/{base:adapter} finds what the completion routes accept, text mode prints the server's
// error_code, sampling values out of range are usage errors before any request, and a chat message that already
// ends in the prompt's '=' answers like one without it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { runCli } from './cli-run.js';
import { post, startServer, type Server } from './server-harness.js';

const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));
const DEMO_ADAPTERS = fileURLToPath(new URL('../../models/demo/adapters', import.meta.url));
const KEY = 'first-run-key';
const auth = { authorization: `Bearer ${KEY}` };

function bannerCommands(output: string): string[] {
  const start = output.indexOf('Demo model ready');
  assert.ok(start >= 0, `no demo banner in:\n${output}`);
  return output.slice(start).split('\n').filter((l) => l.startsWith('  ') && /^\s+(curl|tslora) /.test(l)).map((l) => l.trim());
}

/** Runs one printed line in a POSIX shell, as a user pasting it would (`tslora` = this checkout's binary). */
function runAsPrinted(line: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', `tslora() { "${process.execPath}" "${BIN}" "$@"; }\n${line}`], { env: { ...process.env, KEY }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the demo model as a new user meets it', { timeout: 240_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer(['--api-key', KEY, '--lora-paths', `add=${DEMO_ADAPTERS}/add`, `upper=${DEMO_ADAPTERS}/upper`], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('the banner counts the adapters of its batch and every printed command works as pasted', async () => {
    assert.match(server.output(), /Try one batch answered by two adapters:/);
    const commands = bannerCommands(server.output());
    assert.equal(commands.length, 4, commands.join('\n'));
    const haveCurl = spawnSync('sh', ['-c', 'command -v curl']).status === 0;
    for (const line of commands) {
      if (line.startsWith('tslora ')) assert.ok(line.includes('--api-key "$KEY"'), `a tslora hint without the key: ${line}`);
      else assert.ok(line.includes('Authorization: Bearer $KEY'), line);
      if (line.startsWith('curl') && !haveCurl) continue;
      const r = runAsPrinted(line);
      assert.equal(r.code, 0, `${line}\n${r.stderr}`);
      assert.ok(!/error|unauthorized/i.test(r.stdout + r.stderr), `${line}\n${r.stdout}${r.stderr}`);
    }
    const generate = runAsPrinted(commands.find((l) => l.startsWith('tslora generate'))!);
    assert.equal(generate.stdout, '[add] 12+30= → 42\n[upper] make me loud= → MAKE ME LOUD\n');
    const list = runAsPrinted(commands.find((l) => l.startsWith('tslora adapter list'))!);
    assert.match(list.stdout, /add/);
    assert.match(list.stdout, /upper/);
  });

  it("GET /v1/models/{id} finds 'demo:add' (what completions accept) and 404s what they would not", async () => {
    const found = await fetch(`${server.url}/v1/models/demo:add`, { headers: auth });
    assert.equal(found.status, 200);
    const card = (await found.json()) as { id: string; parent: string };
    assert.deepEqual([card.id, card.parent], ['demo:add', 'demo']);
    assert.equal((await fetch(`${server.url}/v1/models/demo:`, { headers: auth })).status, 200);
    assert.equal((await fetch(`${server.url}/v1/models/add`, { headers: auth })).status, 200);
    for (const id of ['demo:nope', 'other:add']) assert.equal((await fetch(`${server.url}/v1/models/${id}`, { headers: auth })).status, 404, id);
    const completion = await post(`${server.url}/v1/completions`, { model: 'demo:add', prompt: '12+30=', max_tokens: 8, temperature: 0 }, auth);
    assert.equal(completion.body.choices[0].text, '42');
  });

  it('a chat message ending in = answers like one without it (the template adds = only when missing)', async () => {
    for (const content of ['12+30=', '12+30']) {
      const chat = await post(`${server.url}/v1/chat/completions`, { model: 'demo:add', messages: [{ role: 'user', content }], max_tokens: 8, temperature: 0 }, auth);
      assert.equal(chat.status, 200, JSON.stringify(chat.body));
      assert.equal(chat.body.choices[0].message.content, '42', content);
    }
  });

  it('text mode prints the error_code of a server refusal', async () => {
    const generate = await runCli(['generate', 'hi=', '--lora', 'nope', '--url', server.url, '--api-key', KEY]);
    assert.equal(generate.code, 4, generate.stderr);
    assert.match(generate.stderr, /\(error_code: not_loaded\)$/m);
    const unload = await runCli(['adapter', 'unload', 'nope', '--url', server.url, '--api-key', KEY]);
    assert.equal(unload.code, 4, unload.stderr);
    assert.match(unload.stderr, /\(error_code: not_loaded\)$/m);
    const usage = await runCli(['generate', 'hi=', '--max-new-tokens', 'x', '--url', server.url]);
    assert.ok(!usage.stderr.includes('error_code'), 'usage errors are not server refusals');
  });
});

it('sampling values out of range are usage errors (exit 2) before any request, one rule for every flag', async () => {
  const nowhere = 'http://127.0.0.1:9'; // nothing is contacted: an attempt would exit 3 (unreachable)
  for (const [flag, value, message] of [
    ['--top-p', '2', '--top-p must be in (0, 1] (got 2)'],
    ['--temperature', '-1', '--temperature must be ≥ 0'],
    ['--top-k', '0', '--top-k must be -1 (off) or ≥ 1 (got 0)'],
  ]) {
    const r = await runCli(['generate', 'hi=', flag, value, '--url', nowhere]);
    assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
    assert.ok(r.stderr.includes(message) && r.stderr.includes("See 'tslora generate --help'"), r.stderr);
  }
});
