#!/usr/bin/env node
// Builds build-cuda/Release/tslora_cuda.node: the LoRA kernel library (scripts/build-cuda.mjs), the CUDA engine
// (native/src/cuda/engine/*.cu, nvcc), the napi glue (native/src/napi-cuda/*.cpp plus the CPU addon's checked
// readers, g++), the host-side LoRA conversion (native/src/lora/*.cpp) and the CPU sampling code; linked against
// cuBLAS and the STATIC CUDA runtime (-lcudart_static -ldl -lrt -lpthread) so the addon loads on machines without a
// GPU or driver (deviceInfo then reports gpuCount 0 and why).
// Usage: node scripts/build-cuda-addon.mjs [--jobs N] [--cublas-include DIR] [--cublas-lib DIR] [--quiet] [--portable]
//   [--out DIR]
//   --portable: the prebuild (scripts/prebuild.mjs): fat binary for sm_80/86/89/90 + compute_90 PTX (cuda-gencode.mjs);
//   --list-sources: print the sources as JSON and exit;
//   --out: the build directory (default build-cuda; the addon is written to DIR/Release/tslora_cuda.node).
//   --cublas-include / --cublas-lib: where cublas_v2.h / libcublas.so live when not under the CUDA toolkit
//   (e.g. a pip-installed nvidia-cublas). Environment: TSLORA_MARCH (default "native").
// Exit status 2 = a requirement is missing (nvcc, cuBLAS headers, Node headers): nothing was built.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gencodeFor } from './cuda-gencode.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const quiet = args.includes('--quiet');
const jobs = Number(option('--jobs', String(Math.max(1, Math.min(8, availableParallelism())))));
const log = (msg) => { if (!quiet) console.log(`build-cuda-addon: ${msg}`); };
const fail = (msg, code = 1) => { console.error(`build-cuda-addon: ${msg}`); process.exit(code); };

const outDir = resolve(option('--out', join(root, 'build-cuda')));
const objDir = join(outDir, 'addon-obj');
const output = join(outDir, 'Release', 'tslora_cuda.node');

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

const files = (dir, ext) => {
  const full = join(root, dir);
  return existsSync(full) ? readdirSync(full).filter((f) => f.endsWith(ext)).sort().map((f) => join(full, f)) : [];
};
const cuSources = files('native/src/cuda/engine', '.cu');
const cppSources = [
  ...files('native/src/napi-cuda', '.cpp'),
  ...files('native/src/cuda/engine', '.cpp'),
  ...['js-read', 'model-options', 'step-convert', 'adapter-input'].map((f) => join(root, 'native/src/napi', `${f}.cpp`)),
  ...['mapped-file', 'model-checks', 'sampling', 'sample-rows', 'thread-pool', 'ops', 'step-checks'].map((f) => join(root, 'native/src/cpu', `${f}.cpp`)),
  ...files('native/src/lora', '.cpp'),
];

// --list-sources: the addon's sources as JSON {cu, cpp} (test/native/cuda-engine-compile.test.ts checks that the host
// sources link on their own), before any requirement is checked.
if (args.includes('--list-sources')) {
  console.log(JSON.stringify({ cu: cuSources, cpp: cppSources }));
  process.exit(0);
}

const nvcc = which('nvcc');
if (!nvcc) fail('nvcc not found on PATH; install the CUDA toolkit (12.8+) or use the CPU addon.', 2);
const cudaHome = [process.env.CUDA_HOME, process.env.CUDA_PATH, resolve(dirname(nvcc), '..'), '/usr/local/cuda']
  .filter(Boolean)
  .find((d) => existsSync(join(d, 'include', 'cuda_runtime.h')));
if (!cudaHome) fail(`cuda_runtime.h not found next to ${nvcc}; set CUDA_HOME.`, 2);
const cublasInclude = option('--cublas-include', null) ?? [join(cudaHome, 'include'), '/usr/include'].find((d) => existsSync(join(d, 'cublas_v2.h')));
if (!cublasInclude || !existsSync(join(cublasInclude, 'cublas_v2.h'))) {
  fail('the cuBLAS headers (cublas_v2.h) were not found; install the CUDA toolkit with cuBLAS, or pass --cublas-include.', 2);
}
const libDirs = [join(cudaHome, 'lib64'), join(cudaHome, 'targets', 'x86_64-linux', 'lib'), join(cudaHome, 'lib')].filter((d) => existsSync(d));
const cudartDir = libDirs.find((d) => existsSync(join(d, 'libcudart_static.a')));
if (!cudartDir) fail(`libcudart_static.a not found under ${cudaHome}.`, 2);
const cublasLib = option('--cublas-lib', null) ?? libDirs.find((d) => existsSync(join(d, 'libcublas.so')));
if (!cublasLib) fail(`libcublas.so not found under ${cudaHome}; pass --cublas-lib.`, 2);

function nodeInclude() {
  const dirs = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')].filter(Boolean);
  const found = dirs.map((d) => join(d, 'include', 'node')).find((d) => existsSync(join(d, 'node_api.h')));
  if (!found) fail('the Node headers (include/node/node_api.h) were not found; set npm_config_nodedir.', 2);
  return found;
}
const napiInclude = dirname(require.resolve('node-addon-api/package.json'));

const includes = ['native/include', 'native/src/cuda', 'native/src/lora'].map((d) => `-I${join(root, d)}`);
const defines = ['-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DTSLORA_HAVE_LORA'];
const march = `-march=${process.env.TSLORA_MARCH || 'native'}`;
const GENCODE = gencodeFor(args);

function objectName(source) {
  const rel = source.slice(root.length + 1).replace(/[/.]/g, '_');
  return join(objDir, `${rel}.o`);
}

function commandFor(source) {
  const object = objectName(source);
  if (source.endsWith('.cu')) {
    return ['nvcc', ['-std=c++17', '-O3', ...GENCODE, '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr', ...includes,
      `-I${cublasInclude}`, '-c', source, '-o', object]];
  }
  return ['g++', ['-std=c++17', '-O2', march, '-fPIC', '-fexceptions', '-Wall', '-Wno-unused-function', ...defines,
    ...includes, `-I${nodeInclude()}`, `-I${napiInclude}`, `-I${join(cudaHome, 'include')}`, '-c', source, '-o', object]];
}

function run(cmd, argv) {
  return new Promise((done) => {
    const child = spawn('nice', [cmd, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    child.on('close', (code) => done({ code, text }));
  });
}

// Where the loader looks for libcublas.so.N: this machine's copy for a local build; for a prebuild (shipped to other
// machines) the usual toolkit locations, as RUNPATH, so that LD_LIBRARY_PATH (a pip or conda cuBLAS) comes first.
function cublasSearchPath() {
  if (!args.includes('--portable')) return cublasLib;
  return ['/usr/local/cuda/lib64', '/usr/local/cuda/targets/x86_64-linux/lib', '/usr/lib/x86_64-linux-gnu'].join(':') + ',--enable-new-dtags';
}

async function main() {
  log(`CUDA ${cudaHome}, cuBLAS headers ${cublasInclude}, ${jobs} job(s)`);
  const kernelArgs = ['--out', outDir, '--jobs', String(jobs), ...(quiet ? ['--quiet'] : []), ...(args.includes('--portable') ? ['--portable'] : [])];
  const kernels = spawnSync(process.execPath, [join(root, 'scripts/build-cuda.mjs'), ...kernelArgs], { stdio: 'inherit' });
  if (kernels.status !== 0) fail('scripts/build-cuda.mjs (the LoRA kernel library) failed.');
  mkdirSync(objDir, { recursive: true });
  mkdirSync(dirname(output), { recursive: true });
  const queue = [...cuSources, ...cppSources];
  const failures = [];
  await Promise.all(Array.from({ length: jobs }, async () => {
    while (queue.length > 0) {
      const source = queue.shift();
      const [cmd, argv] = commandFor(source);
      const r = await run(cmd, argv);
      log(`${r.code === 0 ? 'ok  ' : 'FAIL'} ${source.slice(root.length + 1)}`);
      if (r.code !== 0 || (!quiet && r.text.trim())) process.stderr.write(r.text);
      if (r.code !== 0) failures.push(source);
    }
  }));
  if (failures.length > 0) fail(`${failures.length} source(s) failed to compile.`);
  const objects = [...cuSources, ...cppSources].map(objectName);
  const link = ['-shared', '-o', output, ...objects, join(outDir, 'libtslora_cuda_kernels.a'), `-L${cublasLib}`, `-L${cudartDir}`,
    '-lcublas', '-lcublasLt', '-lcudart_static', '-ldl', '-lrt', '-lpthread', `-Wl,-rpath,${cublasSearchPath()}`, '-Wl,-z,now'];
  // napi_* symbols stay undefined here: the node binary provides them at load time. -z now: a missing symbol fails
  // the load (which the loader reports and --device auto survives) instead of aborting at the first call.
  const r = await run('g++', link);
  if (r.code !== 0) fail(`link failed:\n${r.text}`);
  log(`wrote ${output}`);
}

main();
