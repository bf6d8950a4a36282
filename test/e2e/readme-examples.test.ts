// The README's examples hold up as printed: every flag of every `tslora ...` example exists in that command's
// --help, and the demo section's requests (curl and `npx tslora generate`) return exactly the output it shows, run
// in a shell against a demo server (the README's http://127.0.0.1:30000 pointed at the test server's port).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { REPO_ROOT, runCli } from './cli-run.js';
import { startServer, type Server } from './server-harness.js';

const BIN = fileURLToPath(new URL('../../bin/tslora.js', import.meta.url));
const README = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
const README_URL = 'http://127.0.0.1:30000';

/** The ```sh blocks, continuation lines joined, comments dropped: one command per entry. */
function shellCommands(): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.flatMap((block) =>
    block.replace(/\\\n\s*/g, ' ').split('\n').map((line) => line.replace(/\s+#.*$/, '').trim()).filter(Boolean),
  );
}

/** `serve`, `generate`, `adapter load`, `bench`, `synth model`: the words before the first argument or flag. */
function commandPath(words: string[]): string[] {
  const path = [words[0]];
  if (['adapter', 'synth'].includes(words[0]) && words[1]) path.push(words[1]);
  return path;
}

it('every flag in a README tslora example is listed by that command\'s --help', async () => {
  const examples = shellCommands().filter((c) => /^(npx )?tslora /.test(c)).map((c) => c.replace(/^npx /, ''));
  assert.ok(examples.length >= 10, `found only ${examples.length} tslora examples`);
  const helpByPath = new Map<string, string>();
  for (const example of examples) {
    const words = example.split(/\s+/).slice(1);
    const path = commandPath(words);
    const key = path.join(' ');
    if (!helpByPath.has(key)) {
      const help = await runCli([...path, '--help']);
      assert.equal(help.code, 0, `tslora ${key} --help: ${help.stderr}`);
      helpByPath.set(key, help.stdout);
    }
    for (const flag of example.match(/(?<=\s)--[a-z][a-z0-9-]*/g) ?? []) {
      const help = helpByPath.get(key)!;
      // a negatable boolean is listed once as --[no-]name
      const listedAs = [flag, `--[no-]${flag.slice(2)}`, `--[no-]${flag.replace(/^--no-/, '')}`];
      assert.ok(listedAs.some((term) => help.includes(term)), `README: \`${example}\` uses ${flag}, which tslora ${key} --help does not list`);
    }
  }
});

describe('the README demo section, run as printed', { timeout: 180_000 }, () => {
  let server: Server;
  before(async () => {
    server = await startServer([], 120_000);
  });
  after(async () => {
    await server?.stop();
  });

  it('its curl and npx tslora generate lines answer what the README shows', () => {
    const start = README.indexOf('npx tslora serve     # prints ready-to-paste requests');
    assert.ok(start >= 0, 'the README demo block moved: update this test');
    const block = README.slice(start, README.indexOf('```', start));
    const commands = block.replace(/\\\n\s*/g, ' ').replace(/'\{\n\s*/g, "'{").replace(/,\n\s*/g, ', ').split('\n').slice(1).filter((l) => l.trim());
    const shown = /```text\n([\s\S]*?)```/.exec(README.slice(start))![1];
    const env = { ...process.env, TSLORA_URL: server.url };
    const run = (line: string) =>
      spawnSync('sh', ['-c', `npx() { shift; "${process.execPath}" "${BIN}" "$@"; }\n${line.replaceAll(README_URL, server.url)}`], { env, encoding: 'utf8', timeout: 60_000 });
    const generate = commands.find((l) => l.startsWith('npx tslora generate'));
    assert.ok(generate, block);
    const printed = run(generate);
    assert.equal(printed.status, 0, printed.stderr);
    assert.equal(printed.stdout, shown);
    const curl = commands.find((l) => l.startsWith('curl'));
    assert.ok(curl, block);
    if (spawnSync('sh', ['-c', 'command -v curl']).status !== 0) return; // the generate line above checked the same batch
    const answered = run(curl);
    assert.equal(answered.status, 0, answered.stderr);
    const texts = (JSON.parse(answered.stdout) as Array<{ text: string }>).map((r) => r.text);
    assert.deepEqual(texts, shown.trim().split('\n').map((l) => l.split(' → ')[1]));
  });
});
