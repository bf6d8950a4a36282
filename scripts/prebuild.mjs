#!/usr/bin/env node
// Builds the prebuilt binaries that ship in the npm package (`npm run build:prebuilds`, before `npm pack` / publish):
//   prebuilds/<platform>-<arch>/tslora_cpu.glibc.node                 (prebuildify + node-gyp, N-API, stripped)
//   prebuilds/cuda/prebuilds/<platform>-<arch>/tslora_cuda.glibc.node   (only where nvcc + cuBLAS exist)
// Both are loaded by node-gyp-build from src/binding/index.ts (the CUDA one from its own prebuilds/cuda root, so that
// node-gyp-build never takes it for the CPU addon).
//
// Portability: the CPU prebuild is compiled for a baseline every x86-64 server of the last decade runs
// (TSLORA_MARCH=x86-64-v2, honoured by `build-native.mjs --march`, i.e. by binding.gyp), never -march=native; the
// wider AVX2 / AVX-512 kernels are chosen at load time by the addon's own CPU dispatch. On arm64 the baseline is
// armv8-a. The CUDA prebuild is a fat binary (SASS for sm_80, sm_86, sm_89, sm_90 plus compute_90 PTX) linked
// against the static CUDA runtime; cuBLAS is found at load time (libcublas.so.N on the loader path).
//
// The build runs in a staging copy (build-prebuild/) so that the developer build in build/ is left alone
// (`node-gyp rebuild`, which prebuildify runs, starts with a clean).
// Usage: node scripts/prebuild.mjs [--cpu-only | --cuda-only] [--if-stale] [--arch x64|arm64]
//                                  [--cublas-include DIR] [--cublas-lib DIR]
//   --cpu-only: no CUDA prebuild. --cuda-only: only the CUDA prebuild (npm run build:prebuilds:cuda; the GPU machine
//   check scripts/device/cuda-prebuild-check.sh). --if-stale: keep a CPU prebuild newer than every native source
//   (npm run test:package). --arch arm64 on x64: cross-compiles the CPU prebuild (Debian's g++-aarch64-linux-gnu).
//   --cublas-include / --cublas-lib: where cublas_v2.h / libcublas.so are when not under the CUDA toolkit (a pip
//   nvidia-cublas wheel, say); they are used at build time only, the prebuild looks for libcublas.so.N at load time.
//   Environment: TSLORA_MARCH overrides the baseline; TSLORA_BUILD_JOBS (default 2).
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, copyFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { values: flags } = parseArgs({
  options: {
    'cpu-only': { type: 'boolean' },
    'cuda-only': { type: 'boolean' },
    'if-stale': { type: 'boolean' },
    arch: { type: 'string', default: process.arch },
    'cublas-include': { type: 'string' },
    'cublas-lib': { type: 'string' },
  },
});
const arch = flags.arch;
const platform = process.platform;
const log = (msg) => console.log(`prebuild: ${msg}`);
const fail = (msg) => {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
};

/** The portable baseline per architecture (overridable with TSLORA_MARCH). */
export const PORTABLE_MARCH = { x64: 'x86-64-v2', arm64: 'armv8-a' };

function nodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && existsSync(join(configured, 'include/node/node_api.h'))) return configured;
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : null;
}

/** A copy of what node-gyp needs (binding.gyp, the sources, the source-list script) with node_modules linked. */
function stage(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'scripts'), { recursive: true });
  for (const file of ['binding.gyp', 'package.json']) copyFileSync(join(root, file), join(dir, file));
  copyFileSync(join(root, 'scripts/build-native.mjs'), join(dir, 'scripts/build-native.mjs'));
  cpSync(join(root, 'native'), join(dir, 'native'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
}

function newestMtimeMs(path) {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((e) => newestMtimeMs(join(path, e))));
}

/** The CPU prebuild of this platform when it is newer than every input of the build, else null. */
function freshCpuPrebuild() {
  const dir = join(root, 'prebuilds', `${platform}-${arch}`);
  const file = existsSync(dir) && readdirSync(dir).find((f) => f.startsWith('tslora_cpu') && f.endsWith('.node'));
  if (!file) return null;
  const inputs = ['native', 'binding.gyp', 'scripts/build-native.mjs', 'scripts/prebuild.mjs'].map((p) => newestMtimeMs(join(root, p)));
  return statSync(join(dir, file)).mtimeMs > Math.max(...inputs) ? join(dir, file) : null;
}

/** Debian's cross toolchain for another Linux architecture (apt-get install g++-aarch64-linux-gnu), as CC/CXX/STRIP. */
function crossCompilerEnv() {
  if (arch === process.arch) return {};
  const triple = { arm64: 'aarch64-linux-gnu', x64: 'x86_64-linux-gnu' }[arch];
  const cxx = triple && `${triple}-g++`;
  if (!cxx || spawnSync('sh', ['-c', `command -v ${cxx}`]).status !== 0) {
    fail(`cross-compiling for ${arch} needs ${cxx ?? 'a cross compiler'} on PATH (Debian: apt-get install g++-${triple}).`);
  }
  return { CC: process.env.CC || `${triple}-gcc`, CXX: process.env.CXX || cxx, STRIP: `${triple}-strip` };
}

function buildCpu() {
  const march = process.env.TSLORA_MARCH || PORTABLE_MARCH[arch];
  if (!march) fail(`no portable -march baseline known for ${arch}; set TSLORA_MARCH.`);
  // one staging folder per run: two prebuild runs at once (a check script beside `npm run test:package`) would
  // otherwise wipe each other's half-built tree
  const dir = join(root, 'build-prebuild', `cpu-${platform}-${arch}-${process.pid}`);
  stage(dir);
  const prebuildify = require.resolve('prebuildify/bin.js');
  const headers = nodeDir();
  const env = {
    ...process.env,
    TSLORA_MARCH: march,
    // node-gyp builds offline against the installed Node headers (the same ones the source install uses).
    ...(headers ? { npm_config_nodedir: headers } : {}),
    JOBS: process.env.TSLORA_BUILD_JOBS || '2',
  };
  Object.assign(env, crossCompilerEnv());
  log(`tslora_cpu for ${platform}-${arch}, -march=${march}${env.CXX ? `, ${env.CXX}` : ''} (staging in ${dir})`);
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [prebuildify, '--napi', '--strip', ...(env.STRIP ? ['--strip-bin', env.STRIP] : []), '--tag-libc', '--name', 'tslora_cpu', '--arch', arch, '--cwd', dir, '--out', root],
    { cwd: root, env, stdio: 'inherit' },
  );
  if (r.status !== 0) fail(`prebuildify failed (exit ${r.status}).`);
  const out = join(root, 'prebuilds', `${platform}-${arch}`);
  log(`wrote ${readdirSync(out).filter((f) => f.startsWith('tslora_cpu')).map((f) => join(out, f)).join(', ')} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  rmSync(dir, { recursive: true, force: true });
}

/** The CUDA prebuild, where the toolkit exists; its absence never fails the CPU prebuild. */
function buildCuda() {
  if (arch !== process.arch) return log('no CUDA prebuild when cross-compiling.');
  const outDir = join(root, 'build-prebuild', 'cuda');
  const passThrough = ['cublas-include', 'cublas-lib'].flatMap((name) => (flags[name] ? [`--${name}`, flags[name]] : []));
  const jobs = process.env.TSLORA_BUILD_JOBS ? ['--jobs', process.env.TSLORA_BUILD_JOBS] : [];
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [join(root, 'scripts/build-cuda-addon.mjs'), '--portable', '--out', outDir, ...jobs, ...passThrough],
    { cwd: root, stdio: 'inherit', env: { ...process.env, TSLORA_MARCH: process.env.TSLORA_MARCH || PORTABLE_MARCH[arch] } },
  );
  if (r.status === 2) {
    if (flags['cuda-only']) fail('no CUDA prebuild: the CUDA toolkit or the cuBLAS headers are missing here (see above).');
    return log('no CUDA prebuild: the CUDA toolkit or the cuBLAS headers are missing here (see above).');
  }
  if (r.status !== 0) fail(`the CUDA prebuild failed (see above)${flags['cuda-only'] ? '' : '; the CPU prebuild is in place'}.`);
  const dest = join(root, 'prebuilds', 'cuda', 'prebuilds', `${platform}-${arch}`);
  const file = join(dest, 'tslora_cuda.glibc.node');
  mkdirSync(dest, { recursive: true });
  cpSync(join(outDir, 'Release', 'tslora_cuda.node'), file);
  // Symbols only (--strip-unneeded keeps the dynamic symbols and the .nv_fatbin device code).
  const strip = spawnSync('strip', ['--strip-unneeded', file], { stdio: 'inherit' });
  if (strip.status !== 0) fail(`strip ${file} failed.`);
  log(`wrote ${file} (${(statSync(file).size / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

if (flags['cpu-only'] && flags['cuda-only']) fail('--cpu-only and --cuda-only exclude each other.');
if (!flags['cuda-only']) {
  const fresh = flags['if-stale'] ? freshCpuPrebuild() : null;
  if (fresh) log(`${fresh} is newer than the native sources; kept.`);
  else buildCpu();
}
if (!flags['cpu-only']) buildCuda();
