import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { adapterLoadOptions, adapterOptions, generateOptions, serveOptions } from '../../src/config/index.js';
import { REPO_ROOT, runCli } from './cli-run.js';

test('--version prints the package version', async () => {
  const { version } = JSON.parse(readFileSync(`${REPO_ROOT}package.json`, 'utf8')) as { version: string };
  const result = await runCli(['--version']);
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), version);
});

test('--help lists the commands', async () => {
  const result = await runCli(['--help']);
  assert.equal(result.code, 0);
  for (const command of ['serve', 'adapter', 'generate', 'bench']) assert.match(result.stdout, new RegExp(`^  ${command}\\b`, 'm'));
});

test('serve --help lists every flag of the option table, its aliases and negations, grouped', async () => {
  const result = await runCli(['serve', '--help']);
  assert.equal(result.code, 0);
  const help = result.stdout;
  for (const spec of serveOptions) {
    const term = spec.negatable ? `--[no-]${spec.flag}` : `--${spec.flag}`;
    assert.ok(help.includes(term), `serve --help lacks ${term}`);
    for (const alias of spec.aliases ?? []) assert.ok(help.includes(`--${alias}`), `serve --help lacks alias --${alias}:\n${help}`);
    assert.ok(help.includes(`${spec.group}:`), `serve --help lacks group ${spec.group}`);
  }
  assert.ok(help.indexOf('LoRA:') > help.indexOf('Model:'));
  const flat = help.replace(/\s+/g, ' '); // descriptions wrap at 80 columns
  assert.ok(flat.includes('(default: 30000)') && flat.includes('(default: csgmv)'), flat);
  assert.ok(flat.includes('give both --max-lora-rank and --lora-target-modules'), 'the run-time loading advice of spec a.4');
  assert.ok(help.includes('TSLORA_'), 'mentions the environment variables');
});

test('adapter subcommands list their options', async () => {
  for (const sub of ['load', 'unload', 'pin', 'unpin', 'list']) {
    const result = await runCli(['adapter', sub, '--help']);
    assert.equal(result.code, 0, sub);
    for (const spec of adapterOptions) {
      const term = spec.negatable ? `--[no-]${spec.flag}` : `--${spec.flag}`;
      assert.ok(result.stdout.includes(term), `adapter ${sub} --help lacks ${term}`);
    }
    const hasPinned = result.stdout.includes('--pinned');
    assert.equal(hasPinned, sub === 'load', `--pinned belongs to load only (${sub})`);
  }
  assert.equal(adapterLoadOptions[0].flag, 'pinned');
});

test('usage errors of commander itself exit 2 with a hint', async () => {
  let result = await runCli(['frobnicate']);
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes("unknown command 'frobnicate'"), result.stderr);
  result = await runCli(['adapter', 'load', 'only-a-name']);
  assert.equal(result.code, 2);
  assert.ok(result.stderr.includes("missing required argument 'path'"), result.stderr);
  assert.ok(result.stderr.includes('--help'), result.stderr);
});

test("a usage error names the failing command's help, never a <command> placeholder", async () => {
  const top = await runCli(['frobnicate']);
  assert.ok(top.stderr.includes("Run 'tslora --help'"), top.stderr);
  const serve = await runCli(['serve', '--no-such-flag']);
  assert.equal(serve.code, 2);
  assert.ok(serve.stderr.includes("Run 'tslora serve --help'"), serve.stderr);
  const load = await runCli(['adapter', 'load', 'only-a-name']);
  assert.ok(load.stderr.includes("Run 'tslora adapter load --help'"), load.stderr);
  for (const result of [top, serve, load]) assert.ok(!result.stderr.includes('<command>'), result.stderr);
});

test('synth adapters --help groups its options under its own headings, not "synth model:"', async () => {
  const adapters = await runCli(['synth', 'adapters', '--help']);
  assert.equal(adapters.code, 0);
  assert.ok(!adapters.stdout.includes('synth model:'), adapters.stdout);
  assert.ok(adapters.stdout.indexOf('Adapters:') < adapters.stdout.indexOf('--count'), adapters.stdout);
  assert.ok(adapters.stdout.indexOf('Output:') < adapters.stdout.indexOf('--out'), adapters.stdout);
  const model = await runCli(['synth', 'model', '--help']);
  assert.ok(!model.stdout.includes('synth adapters:') && model.stdout.indexOf('Model:') < model.stdout.indexOf('--shape'), model.stdout);
});

test('generate --help lists its own options and the connection options', async () => {
  const result = await runCli(['generate', '--help']);
  assert.equal(result.code, 0, result.stderr);
  for (const spec of [...generateOptions, ...adapterOptions]) {
    const term = spec.negatable ? `--[no-]${spec.flag}` : `--${spec.flag}`;
    assert.ok(result.stdout.includes(term), `generate --help lacks ${term}`);
  }
  assert.match(result.stdout, /--lora <NAME>.*\n?.*/);
  assert.ok(result.stdout.replace(/\s+/g, ' ').includes('(repeatable)'));
});

test("a bad flag value points at the help of the command that failed", async () => {
  const cases: Array<[string[], string]> = [
    [['adapter', 'list', '--timeout', 'abc'], "See 'tslora adapter list --help' for what --timeout accepts."],
    [['generate', 'x=', '--max-new-tokens', 'z'], "See 'tslora generate --help' for what --max-new-tokens accepts."],
    [['serve', '--port', 'x'], "See 'tslora serve --help' for what --port accepts."],
  ];
  for (const [args, hint] of cases) {
    const result = await runCli(args);
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.stderr.includes(hint), `${args.join(' ')}: ${result.stderr}`);
  }
});
