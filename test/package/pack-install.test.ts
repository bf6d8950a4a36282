/**
 * The npm package as a user gets it: `npm pack`, then the tarball installed into an empty directory with install
 * scripts disabled and no compiler on PATH (so the native addon can only come from the shipped prebuild), then
 * `tslora serve` on the demo model and one /generate (with a CUDA prebuild that cannot load beside it: --device auto
 * still serves on the CPU). A global install (`npm i -g`, into a temporary prefix) puts
 * a bare `tslora` and its man pages in place (the installed folder, linked as `npm link` does).
 * Needs the prebuild of this platform: `npm run test:package` builds it first (scripts/prebuild.mjs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const PLATFORM = `${process.platform}-${process.arch}`;

function npmCli(): string {
  const found = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(found, 'npm is not on PATH');
  return realpathSync(found);
}

/** A PATH holding node and npm only: no g++, cc, make or python, so nothing can be compiled. */
function compilerFreePath(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(npmCli(), join(bin, 'npm'));
  return bin;
}

function run(cmd: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { ...options, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Starts the installed `tslora serve` and resolves with its URL once it listens. */
function serve(bin: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ url: string; stop: () => Promise<void>; output: () => string }> {
  const child = spawn(bin, ['serve', '--port', '0', '--num-threads', '1'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
      const m = /listening on (\S+)/.exec(output);
      if (m) resolve({ url: m[1], stop, output: () => output });
    });
    void exited.then(() => reject(new Error(`tslora serve exited before listening:\n${output}`)));
  });
}

test('npm pack → install without scripts or a compiler → tslora serve answers /generate; npm i -g / npm link give tslora and man', async () => {
  const prebuilds = join(REPO, 'prebuilds', PLATFORM);
  assert.ok(
    existsSync(prebuilds) && readdirSync(prebuilds).some((f) => f.startsWith('tslora_cpu') && f.endsWith('.node')),
    `no CPU prebuild in ${prebuilds}: run \`npm run build:prebuilds\` (or \`npm run test:package\`, which does) first`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'tslora-pack-'));
  try {
    const started = Date.now();
    const bin = compilerFreePath(dir);
    // HOME and the npm cache stay the user's (offline-first installs from the cache npm ci filled).
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: bin, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };
    for (const key of Object.keys(env)) if (key.startsWith('TSLORA_')) delete env[key];
    for (const compiler of ['g++', 'c++', 'cc', 'gcc', 'make', 'python3']) {
      assert.notEqual(spawnSync('/bin/sh', ['-c', `command -v ${compiler}`], { env }).status, 0, `${compiler} is still on PATH`);
    }

    // dist/ is built by `npm test` (and by `prepare` on a real publish); --ignore-scripts keeps the pack quick.
    const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO, env }).stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = join(dir, packed[0].filename);
    const files = packed[0].files.map((f) => f.path);
    assert.ok(files.some((f) => f.startsWith(`prebuilds/${PLATFORM}/tslora_cpu`)), 'the tarball carries the CPU prebuild');
    assert.ok(!files.some((f) => f.startsWith('build/') || f.startsWith('test/') || f.startsWith('src/')), 'no build/, src/ or test/ in the tarball');
    assert.ok(files.includes('man/tslora.1') && files.includes('dist/cli/main.js') && files.includes('models/demo/model.safetensors'));

    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    run('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-package-lock', tarball], { cwd: app, env });
    const installed = join(app, 'node_modules', 'tslora');
    assert.ok(!existsSync(join(installed, 'build')), 'nothing was built at install');
    // A CUDA prebuild that cannot load here (as on a machine without the NVIDIA driver or libcublas) never stands in
    // the way of the CPU addon: --device auto serves on the CPU, --device cuda says why it cannot.
    const cudaPrebuilds = join(installed, 'prebuilds', 'cuda', 'prebuilds', PLATFORM);
    mkdirSync(cudaPrebuilds, { recursive: true });
    writeFileSync(join(cudaPrebuilds, 'tslora_cuda.glibc.node'), 'not a shared object');
    const cuda = spawnSync(join(app, 'node_modules', '.bin', 'tslora'), ['serve', '--device', 'cuda', '--port', '0'], { cwd: app, env, encoding: 'utf8', timeout: 120_000 });
    assert.equal(cuda.status, 2, `${cuda.stdout}${cuda.stderr}`);
    assert.match(cuda.stderr, /--device cuda was requested, but the CUDA addon could not be loaded: .*tslora_cuda\.glibc\.node/);

    const server = await serve(join(app, 'node_modules', '.bin', 'tslora'), app, env);
    try {
      const res = await fetch(`${server.url}/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: ['12+30=', 'make me loud='], lora_path: ['add', 'upper'], sampling_params: { max_new_tokens: 16, temperature: 0 } }),
      });
      assert.equal(res.status, 200, server.output());
      assert.deepEqual(((await res.json()) as Array<{ text: string }>).map((r) => r.text), ['42', 'MAKE ME LOUD']);
      // started by its bin link, not npx: the banner's hints say the bare command
      assert.match(server.output(), /^ {2}tslora generate /m);
      assert.match(server.output(), /engine on cpu /, '--device auto falls back to the CPU');
    } finally {
      await server.stop();
    }

    // `npm i -g <folder>` links the folder like `npm link` does (the README's command for a bare tslora) and puts
    // bin and man links in place the same way a global tarball install does, without fetching the dependencies again.
    const prefix = join(dir, 'global');
    run('npm', ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--offline', installed], { cwd: dir, env });
    const version = run(join(prefix, 'bin', 'tslora'), ['--version'], { cwd: dir, env }).stdout.trim();
    assert.match(version, /^\d+\.\d+\.\d+/);
    for (const page of ['tslora.1', 'tslora-serve.1', 'tslora-adapter.1', 'tslora-bench.1']) {
      assert.ok(existsSync(join(prefix, 'share', 'man', 'man1', page)), `npm i -g did not link man1/${page}`);
    }
    console.log(`# pack + 2 installs + serve + /generate in ${((Date.now() - started) / 1000).toFixed(1)} s (tarball ${files.length} files)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
