// The CUDA engine must compile wherever nvcc exists (CI has nvcc but no GPU and no cuBLAS headers): every .cu of
// native/src/cuda/engine that does not include cuBLAS goes through nvcc -c (SASS for sm_90a, so ptxas runs too), and
// the host-only sources of the engine and of native/src/napi-cuda through g++ -fsyntax-only against the CUDA and
// Node headers. Skipped, with the reason, when nvcc (or, for the second test, the Node headers) is missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const engineDir = join(root, 'native/src/cuda/engine');
const includes = ['native/include', 'native/src/cuda', 'native/src/lora'].map((d) => `-I${join(root, d)}`);

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const nvcc = which('nvcc');
const cudaInclude = nvcc ? [resolve(dirname(nvcc), '../include'), '/usr/local/cuda/include'].find((d) => existsSync(join(d, 'cuda_runtime.h'))) : undefined;
const nodeInclude = [process.env.npm_config_nodedir, resolve(dirname(process.execPath), '..')]
  .filter((d): d is string => Boolean(d))
  .map((d) => join(d, 'include', 'node'))
  .find((d) => existsSync(join(d, 'node_api.h')));
const napiInclude = dirname(createRequire(import.meta.url).resolve('node-addon-api/package.json'));

const usesCublas = (file: string): boolean => /#include\s*[<"]cublas/.test(readFileSync(file, 'utf8'));
const cuFiles = readdirSync(engineDir).filter((f) => f.endsWith('.cu')).map((f) => join(engineDir, f));

test('every CUDA engine .cu without cuBLAS compiles with nvcc (sm_90a)', { skip: nvcc ? false : 'nvcc not found on PATH (install the CUDA toolkit to compile native/src/cuda/engine)' }, () => {
  const withoutBlas = cuFiles.filter((f) => !usesCublas(f));
  assert.ok(withoutBlas.length >= 3, `expected the kernels, the model and the forward, found ${withoutBlas.map((f) => basename(f))}`);
  // blas.cu and its cuBLASLt tuner are the files that need cuBLAS; the rest of the engine must not grow a dependency on it.
  assert.deepEqual(cuFiles.filter(usesCublas).map((f) => basename(f)).sort(), ['blas.cu', 'gemm-tune.cu']);
  const out = mkdtempSync(join(tmpdir(), 'tslora-cuda-engine-'));
  try {
    for (const file of withoutBlas) {
      const r = spawnSync('nice', ['nvcc', '-std=c++17', '-O1', '-gencode', 'arch=compute_90a,code=sm_90a', ...includes, '-c', file, '-o', join(out, `${basename(file)}.o`)], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${basename(file)}:\n${r.stdout}${r.stderr}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

const hostSkip = !cudaInclude ? 'cuda_runtime.h not found (no CUDA toolkit)' : !nodeInclude ? 'the Node headers (include/node/node_api.h) were not found' : false;
test('the CUDA addon host sources (napi-cuda, engine .cpp) pass g++ -fsyntax-only', { skip: hostSkip }, () => {
  const sources = [
    ...readdirSync(join(root, 'native/src/napi-cuda')).filter((f) => f.endsWith('.cpp')).map((f) => join(root, 'native/src/napi-cuda', f)),
    ...readdirSync(engineDir).filter((f) => f.endsWith('.cpp')).map((f) => join(engineDir, f)),
  ];
  assert.ok(sources.length >= 4);
  for (const file of sources) {
    const r = spawnSync('nice', ['g++', '-std=c++17', '-fsyntax-only', '-Wall', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DTSLORA_HAVE_LORA', ...includes, `-I${nodeInclude}`, `-I${napiInclude}`, `-I${cudaInclude}`, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${basename(file)}:\n${r.stdout}${r.stderr}`);
  }
});

// The CUDA addon links a chosen few CPU sources (scripts/build-cuda-addon.mjs --list-sources) with -z now: a CPU source
// that starts calling into one that is not on the list (ops.cpp into the CPU kernel table, once) makes the addon fail
// to load on every GPU machine. Every tslora::cpu symbol the addon's host objects need must be defined among them.
test('the CUDA addon host objects define every tslora::cpu symbol they use', { skip: hostSkip || (which('nm') ? false : 'nm not found') }, () => {
  const listed = spawnSync(process.execPath, [join(root, 'scripts/build-cuda-addon.mjs'), '--list-sources'], { encoding: 'utf8' });
  assert.equal(listed.status, 0, listed.stderr);
  const cpp: string[] = JSON.parse(listed.stdout).cpp;
  assert.ok(cpp.some((f) => f.endsWith('native/src/cpu/ops.cpp')), 'the list names the CPU sources');
  const out = mkdtempSync(join(tmpdir(), 'tslora-cuda-host-objects-'));
  try {
    const objects = cpp.map((file, i) => {
      const object = join(out, `${i}-${basename(file)}.o`);
      const r = spawnSync('nice', ['g++', '-std=c++17', '-O0', '-c', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-DTSLORA_HAVE_LORA', ...includes, `-I${nodeInclude}`, `-I${napiInclude}`, `-I${cudaInclude}`, file, '-o', object], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${basename(file)}:\n${r.stdout}${r.stderr}`);
      return object;
    });
    const symbols = (flag: string): Set<string> => {
      const r = spawnSync('nm', ['-C', flag, ...objects], { encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, r.stderr);
      return new Set(r.stdout.split('\n').map((l) => l.replace(/^\s*[0-9a-f]*\s+[A-Za-z]\s+/, '')).filter((n) => n.startsWith('tslora::cpu::')));
    };
    const defined = symbols('--defined-only');
    const missing = [...symbols('--undefined-only')].filter((n) => !defined.has(n));
    assert.deepEqual(missing, [], 'add their sources to build-cuda-addon.mjs, or move the code they need');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the LoRA pass planner of the CUDA engine splits steps within its limits (host-only driver, g++)', { skip: which('g++') ? false : 'g++ not found' }, () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-lora-passes-'));
  try {
    const exe = join(out, 'lora-passes-test');
    const build = spawnSync('nice', ['g++', '-std=c++17', '-O1', '-Wall', ...includes, join(engineDir, 'test/lora-passes-test.cpp'), join(engineDir, 'lora-passes.cpp'), '-o', exe], { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(exe, [], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /0 failures/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the attention split / greedy chunk rules of the CUDA engine match a direct softmax and the CPU sampler (host-only driver, g++)', { skip: which('g++') ? false : 'g++ not found' }, () => {
  const out = mkdtempSync(join(tmpdir(), 'tslora-attn-greedy-rules-'));
  try {
    const exe = join(out, 'attention-greedy-rules-test');
    const build = spawnSync('nice', ['g++', '-std=c++17', '-O1', '-Wall', ...includes, join(engineDir, 'test/attention-greedy-rules-test.cpp'), '-o', exe], { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(exe, [], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /^0 failures$/m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// The kernels themselves, on the host CUDA emulator (native/src/cuda/engine/test/emu): attention (split, merge,
// tensor-core prefill on WMMA and on mma.sync, fallback), greedy rows, the qkv post-processing, norms, SwiGLU and the skinny decode GEMM (plain
// and with SwiGLU in its epilogue) against fp64 / CPU-sampler references.
const emuSkip = !which('g++') ? 'g++ not found' : !cudaInclude ? 'cuda_runtime.h not found (no CUDA toolkit)' : false;
test('the attention, greedy-row, qkv, norm, SwiGLU and skinny GEMM kernels match their references, and their LoRA-delta inputs act_round(y + delta), on the host CUDA emulator (g++)', { skip: emuSkip, timeout: 600_000 }, async () => {
  // @ts-expect-error plain ESM helper without type declarations
  const { transformCuda } = await import('../../native/src/cuda/engine/test/emu/transform.mjs');
  // @ts-expect-error plain ESM helper without type declarations
  const { writeMmaForEmulator } = await import('../../native/src/cuda/test/emu/mma-emu.mjs');
  // @ts-expect-error plain ESM helper without type declarations
  const { writePtxHeadersForEmulator } = await import('../../native/src/cuda/test/emu/ptx-headers-emu.mjs');
  const out = mkdtempSync(join(tmpdir(), 'tslora-kernel-emu-'));
  try {
    // The mma.sync prefill attention's PTX headers, rewritten into out/ (searched first) for the emulator's fibers.
    writeMmaForEmulator(out);
    writePtxHeadersForEmulator(out);
    const flags = ['-std=c++17', '-O1', '-Wall', '-Wno-unknown-pragmas', `-I${out}`, `-I${cudaInclude}`, ...includes, `-I${engineDir}`];
    const objects: string[] = [];
    for (const name of ['attention', 'attention-prefill', 'greedy', 'kernels', 'skinny-gemm']) {
      const src = join(out, `${name}.cpp`);
      writeFileSync(src, transformCuda(readFileSync(join(engineDir, `${name}.cu`), 'utf8')));
      const obj = join(out, `${name}.o`);
      const r = spawnSync('nice', ['g++', ...flags, '-include', join(engineDir, 'test/emu/cuda-emu.h'), '-include',
        join(engineDir, 'test/emu/mma-fiber-emu.h'), '-c', src, '-o', obj], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${name}.cu (emulated):\n${r.stdout}${r.stderr}`);
      objects.push(obj);
    }
    // kernel-emu-test: the kernels against fp64 / CPU references; delta-consumer-test: the side expand's consumers
    // (an fp32 LoRA delta beside the projection) bit for bit against the same kernels on act_round(y + delta).
    for (const name of ['kernel-emu-test', 'delta-consumer-test']) {
      const exe = join(out, name);
      const build = spawnSync('nice', ['g++', ...flags, join(engineDir, `test/${name}.cpp`), ...objects, '-o', exe], { encoding: 'utf8' });
      assert.equal(build.status, 0, `${name}: ${build.stdout}${build.stderr}`);
      const run = spawnSync(exe, [], { encoding: 'utf8' });
      assert.equal(run.status, 0, `${name}: ${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /^0 failures$/m, name);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
