#!/usr/bin/env node
// Builds the native addons: tslora_cpu.node always (node-gyp + node-addon-api, offline against the installed Node
// headers), and tslora_cuda.node through scripts/build-cuda.mjs when nvcc and the cuBLAS headers are present.
// Usage: node scripts/build-native.mjs [--force] [--cuda]      (npm `install` script; `npm run build:native`)
// Helper modes used by binding.gyp: --list-sources, --list-defines, --march.
// Environment: TSLORA_MARCH (default "native"; portable builds pass e.g. x86-64-v2: the GEMM kernels are compiled
// for AVX2 and AVX-512 as well and picked at load by the CPU's features, see native/src/cpu/cpu-isa.h),
// TSLORA_NO_LORA=1 (leave native/src/lora out), TSLORA_SKIP_NATIVE=1,
// TSLORA_BUILD_FROM_SOURCE=1 (compile even where a prebuilt binary loads).
// An installed package (npm i tslora) ships prebuilds/ (scripts/prebuild.mjs): when the one for this platform loads,
// nothing is compiled; otherwise the addon is built from source here (needs a C++17 compiler).
import { existsSync, readdirSync, statSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const require = createRequire(import.meta.url);

function cppFiles(dir) {
  const full = join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full)
    .filter((f) => f.endsWith('.cpp'))
    .sort()
    .map((f) => `${dir}/${f}`);
}

function loraSources() {
  return process.env.TSLORA_NO_LORA === '1' ? [] : cppFiles('native/src/lora');
}

function sources() {
  return [...cppFiles('native/src/napi'), ...cppFiles('native/src/cpu'), ...cppFiles('native/src/cpu/tp'), ...loraSources()];
}

if (args.has('--list-sources')) {
  process.stdout.write(sources().join(' '));
  process.exit(0);
}
if (args.has('--list-defines')) {
  process.stdout.write(loraSources().length > 0 ? 'TSLORA_HAVE_LORA' : 'TSLORA_NO_LORA_KERNELS');
  process.exit(0);
}
if (args.has('--march')) {
  process.stdout.write(`-march=${process.env.TSLORA_MARCH || 'native'}`);
  process.exit(0);
}
if (process.env.TSLORA_SKIP_NATIVE === '1') {
  console.log('tslora: TSLORA_SKIP_NATIVE=1, not building the native addon');
  process.exit(0);
}

const force = args.has('--force');
const output = join(root, 'build/Release/tslora_cpu.node');
const stampPath = join(root, 'build/tslora-cpu.stamp');

// Newest modification time under the inputs, plus a signature of the source list (a new file forces a build).
function newestInput() {
  let newest = 0;
  const visit = (p) => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) visit(join(p, e));
    } else if (/\.(cpp|h|hpp|inc|gyp)$/.test(p) || p.endsWith('build-native.mjs')) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const d of ['native/src/napi', 'native/src/cpu', 'native/src/lora', 'native/include', 'binding.gyp']) {
    visit(join(root, d));
  }
  visit(join(root, 'scripts/build-native.mjs'));
  return newest;
}

const signature = JSON.stringify({ sources: sources(), march: process.env.TSLORA_MARCH || 'native' });
const upToDate =
  !force &&
  existsSync(output) &&
  existsSync(stampPath) &&
  readFileSync(stampPath, 'utf8') === signature &&
  statSync(output).mtimeMs >= newestInput();

function nodeGypCommand() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

// Offline builds need the installed Node headers: npm's nodedir, else the prefix of this node binary.
function nodeDir() {
  const configured = process.env.npm_config_nodedir;
  if (configured && existsSync(join(configured, 'include/node/node_api.h'))) return configured;
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include/node/node_api.h'))) return prefix;
  return configured || null;
}

function buildCpu() {
  const gyp = nodeGypCommand();
  if (!gyp) {
    console.error('tslora: node-gyp not found. Install dev dependencies (npm ci) or run through npm.');
    process.exit(1);
  }
  const dir = nodeDir();
  const common = ['--release'];
  if (dir) common.push(`--nodedir=${dir}`);
  // Re-configure only when the source list changed (or on --force); otherwise make rebuilds what changed.
  const previous = existsSync(stampPath) ? readFileSync(stampPath, 'utf8') : '';
  const configured = existsSync(join(root, 'build/Makefile')) && previous === signature && !force;
  console.log(`tslora: building tslora_cpu.node (${sources().length} sources${loraSources().length ? '' : ', no LoRA kernels'})`);
  const started = Date.now();
  let r = configured ? { status: 0 } : spawnSync(process.execPath, [gyp, 'configure', ...common], { cwd: root, stdio: 'inherit' });
  if (r.status === 0) {
    const jobs = `--jobs=${process.env.TSLORA_BUILD_JOBS || 2}`;
    r = spawnSync(process.execPath, [gyp, 'build', jobs, ...common], { cwd: root, stdio: 'inherit' });
  }
  if (r.status !== 0) {
    console.error('tslora: building the CPU addon failed (see the compiler output above).');
    process.exit(r.status ?? 1);
  }
  mkdirSync(dirname(stampPath), { recursive: true });
  writeFileSync(stampPath, signature);
  console.log(`tslora: built ${output} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function cublasHeaders(nvcc) {
  const dirs = [
    process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'include'),
    process.env.CUDA_PATH && join(process.env.CUDA_PATH, 'include'),
    nvcc && resolve(dirname(nvcc), '../include'),
    '/usr/local/cuda/include',
    '/usr/include',
  ].filter(Boolean);
  return dirs.find((d) => existsSync(join(d, 'cublas_v2.h'))) ?? null;
}

/**
 * The prebuilt binary node-gyp-build would load from `dir`/prebuilds for this platform, if it loads here (a
 * child process tries it: a prebuild for a newer glibc, say, fails to load and the source build takes over).
 */
/** `fallback` says what happens instead when the prebuild does not load (printed with the reason). */
function loadablePrebuild(dir, fallback) {
  if (force || process.env.TSLORA_BUILD_FROM_SOURCE === '1' || !existsSync(join(dir, 'prebuilds'))) return null;
  let path;
  try {
    path = require('node-gyp-build').resolve(dir);
  } catch {
    return null;
  }
  if (!path.includes(`${join(dir, 'prebuilds')}`)) return null;
  const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', path], { encoding: 'utf8' });
  if (probe.status === 0) return path;
  const reason = probe.stderr.split('\n').find((line) => /Error/.test(line))?.trim() ?? `exit ${probe.status}`;
  console.error(`tslora: the prebuilt ${path} does not load here (${reason}); ${fallback}.`);
  return null;
}

const cpuPrebuild = existsSync(output) ? null : loadablePrebuild(root, 'building from source');
if (cpuPrebuild) {
  console.log(`tslora: using the prebuilt CPU addon ${cpuPrebuild} (TSLORA_BUILD_FROM_SOURCE=1 compiles it instead)`);
} else if (upToDate) {
  console.log('tslora: tslora_cpu.node is up to date (use --force to rebuild)');
} else {
  buildCpu();
}

const nvcc = which('nvcc');
// The CUDA addon build (kernel library + engine + napi glue); the kernel library alone where it is missing.
const cudaScript = [join(root, 'scripts/build-cuda-addon.mjs'), join(root, 'scripts/build-cuda.mjs')].find((p) => existsSync(p));
const cublas = nvcc ? cublasHeaders(nvcc) : null;
// --cuda or TSLORA_REQUIRE_CUDA=1: a CUDA build that fails or cannot run fails this script. A visible GPU alone only
// warns loudly (the CPU install must not need the CUDA toolkit); the test run then fails on the GPU suites
// (scripts/run-tests.mjs requires the CUDA addon where nvidia-smi -L lists a GPU).
const cudaRequired = args.has('--cuda') || process.env.TSLORA_REQUIRE_CUDA === '1';
function cudaNotBuilt(why, status) {
  console.error(`tslora: ${why}; the CPU backend still works (--device cpu).`);
  if (cudaRequired) process.exit(status);
  const gpu = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (gpu.status === 0 && /GPU \d+/.test(gpu.stdout)) {
    console.error('tslora: WARNING: this machine has a GPU but no working CUDA addon; `npm test` will fail its GPU suites ' +
      '(set TSLORA_REQUIRE_CUDA=0 to test the CPU backend only, TSLORA_REQUIRE_CUDA=1 to make this build fail).');
  }
}
const cudaPrebuild = args.has('--cuda') ? null : loadablePrebuild(
  join(root, 'prebuilds', 'cuda'),
  nvcc && cublas ? 'building the CUDA addon from source' : 'no CUDA toolkit with cuBLAS here to build one from source (--device auto uses the CPU)',
);
if (cudaPrebuild) {
  console.log(`tslora: using the prebuilt CUDA addon ${cudaPrebuild}`);
} else if (nvcc && cublas && cudaScript) {
  const r = spawnSync(process.execPath, [cudaScript, ...(force ? ['--force'] : [])], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) cudaNotBuilt('the CUDA addon failed to build', r.status ?? 1);
} else {
  const missing = !nvcc ? 'nvcc is not on PATH' : !cublas ? 'the cuBLAS headers (cublas_v2.h) were not found' : 'scripts/build-cuda.mjs is missing';
  if (cudaRequired || nvcc) cudaNotBuilt(`cannot build the CUDA addon: ${missing}`, 1);
}
