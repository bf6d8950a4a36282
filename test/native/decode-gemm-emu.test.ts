// The tensor-core decode GEMM (native/src/cuda/engine/decode-gemm.cu) on the host CUDA emulator, no GPU needed:
// native/src/cuda/engine/test/emu/decode-gemm-emu.mjs rewrites its mma.sync PTX (mma16816.cuh) into a warp-collective emulation
// built from the PTX fragment layout, and the GPU test driver (decode-gemm-test.cu --quick) runs its two small shapes
// against an fp64 reference: the permuted-K fragments, n-tile padding, a column tile cut by N, forced K splits with
// the last-block ticket reduction, both warp tilings, rows past M untouched and row bits independent of M.
// The real hardware runs the full driver (test/gpu/decode-gemm.test.ts). Skipped, with the reason, without the CUDA
// headers or g++.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const engineDir = join(root, 'native/src/cuda/engine');

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const nvcc = which('nvcc');
const cudaInclude = [process.env.CUDA_HOME, process.env.CUDA_PATH, nvcc ? resolve(dirname(nvcc), '..') : undefined, '/usr/local/cuda']
  .filter((d): d is string => Boolean(d))
  .map((d) => join(d, 'include'))
  .find((d) => existsSync(join(d, 'cuda_bf16.h')));
const skip = !which('g++') ? 'g++ not found' : !cudaInclude ? 'CUDA headers (cuda_bf16.h) not found' : false;

test('decode GEMM (tensor cores, split-K tickets) matches an fp64 reference on the host CUDA emulator', { skip, timeout: 600_000 }, async () => {
  // @ts-expect-error plain ESM helper without type declarations
  const { writeDecodeGemmForEmulator } = await import('../../native/src/cuda/engine/test/emu/decode-gemm-emu.mjs');
  const out = mkdtempSync(join(tmpdir(), 'tslora-decode-gemm-emu-'));
  try {
    const kernel: string = writeDecodeGemmForEmulator(out);  // + the emulated mma16816.cuh beside it
    const exe = join(out, 'decode-gemm-emu-test');
    const includes = [`-I${cudaInclude}`, `-I${join(root, 'native/include')}`, `-I${join(root, 'native/src/cuda')}`, `-I${engineDir}`,
      `-I${join(engineDir, 'test')}`];
    const build = spawnSync('nice', ['g++', '-std=c++17', '-O1', '-Wall', '-Wno-unknown-pragmas', ...includes, '-include',
      join(engineDir, 'test/emu/decode-gemm-emu.h'), kernel, '-x', 'c++', join(engineDir, 'test/decode-gemm-test.cu'), '-pthread', '-o', exe],
    { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(exe, ['--quick'], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /^refusals: 5 bad calls refused$/m);
    assert.match(run.stdout, /^ok: 4 shape configurations, 96 launches, 0 failures$/m);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
