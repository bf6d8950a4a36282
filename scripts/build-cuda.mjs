#!/usr/bin/env node
// Compiles the CUDA sources under native/src/cuda (nvcc, SASS for sm_90a + compute_90 PTX, -fPIC) into
// build-cuda/obj/*.o and the static library build-cuda/libtslora_cuda_kernels.a for the CUDA addon to link (with the
// static CUDA runtime, cudart_static + dl + rt + pthread). Sources that include cuBLAS are compiled only when the
// cuBLAS headers are found; the rest must compile on any machine with nvcc, GPU or not.
// Usage: node scripts/build-cuda.mjs [--out DIR] [--jobs N] [--quiet] [--portable]
//   --portable: the prebuild's fat binary (sm_80/86/89/90 + compute_90 PTX, scripts/cuda-gencode.mjs)
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gencodeFor } from './cuda-gencode.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const outDir = resolve(option('--out', join(root, 'build-cuda')));
const jobs = Number(option('--jobs', String(Math.max(1, Math.min(4, availableParallelism())))));
const quiet = args.includes('--quiet');
const log = (msg) => { if (!quiet) console.log(msg); };

export const GENCODE = gencodeFor(args);

function nvccVersion() {
  const probe = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? probe.stdout.trim().split('\n').pop() : null;
}

function cublasAvailable() {
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda'].filter(Boolean);
  return candidates.some((dir) => existsSync(join(dir, 'include', 'cublas_v2.h')));
}

function compile(source, object) {
  const argv = ['-std=c++17', '-O3', ...GENCODE, '-Xcompiler', '-fPIC', '-Xcompiler', '-Wall', '--expt-relaxed-constexpr',
    `-I${join(root, 'native/include')}`, `-I${join(root, 'native/src/cuda')}`, `-I${join(root, 'native/src/lora')}`, '-c', source,
    '-o', object];
  return new Promise((resolvePromise) => {
    const child = spawn('nice', ['nvcc', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => { output += d; });
    child.stderr.on('data', (d) => { output += d; });
    child.on('close', (code) => resolvePromise({ source, code, output }));
  });
}

async function main() {
  const version = nvccVersion();
  if (!version) {
    console.error('build-cuda: nvcc not found on PATH; install the CUDA toolkit (12.4+) or build the CPU addon only.');
    process.exit(2);
  }
  const srcDir = join(root, 'native/src/cuda');
  const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cu')).sort().map((f) => join(srcDir, f));
  const haveCublas = cublasAvailable();
  const selected = sources.filter((s) => {
    const needsCublas = /#include\s*[<"]cublas/.test(readFileSync(s, 'utf8'));
    if (needsCublas && !haveCublas) log(`build-cuda: skipping ${basename(s)} (needs cuBLAS headers, not found)`);
    return !needsCublas || haveCublas;
  });
  mkdirSync(join(outDir, 'obj'), { recursive: true });
  log(`build-cuda: ${version}; ${selected.length} source(s), ${jobs} job(s) → ${outDir}`);
  const queue = [...selected];
  const failures = [];
  const objects = [];
  await Promise.all(Array.from({ length: jobs }, async () => {
    while (queue.length > 0) {
      const source = queue.shift();
      const object = join(outDir, 'obj', basename(source).replace(/\.cu$/, '.o'));
      const result = await compile(source, object);
      if (result.code !== 0) failures.push(result);
      else objects.push(object);
      log(`build-cuda: ${result.code === 0 ? 'ok  ' : 'FAIL'} ${basename(source)}`);
      if (result.code !== 0 || (!quiet && result.output.trim())) process.stderr.write(result.output);
    }
  }));
  if (failures.length > 0) {
    console.error(`build-cuda: ${failures.length} source(s) failed: ${failures.map((f) => basename(f.source)).join(', ')}`);
    process.exit(1);
  }
  const archive = join(outDir, 'libtslora_cuda_kernels.a');
  const ar = spawnSync('ar', ['rcs', archive, ...objects.sort()], { encoding: 'utf8' });
  if (ar.status !== 0) {
    console.error(`build-cuda: ar failed: ${ar.stderr}`);
    process.exit(1);
  }
  log(`build-cuda: wrote ${archive}`);
}

main();
