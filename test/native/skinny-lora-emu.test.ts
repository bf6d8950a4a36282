// The skinny GEMM with the LoRA delta in its epilogue (native/src/cuda/engine/skinny-gemm.h SkinnyLora) on the host
// CUDA emulator: native/src/cuda/engine/test/skinny-lora-test.cu built with -DTSLORA_SKINNY_LORA_EMU against
// skinny-gemm.cu and kernels.cu (rewritten by emu/transform.mjs) and the real small-step expand (lora_small_expand.cu,
// rewritten by emu/lora-expand-emu.mjs). Plain, SwiGLU and qkv-RoPE epilogues with the delta must be bit-identical to
// the skinny GEMM + loraExpandSmall (+ launchSwiglu / launchQkvPost) for 1 and 2 rows, base rows beside adapter rows,
// ranks 5..64 (r64 fp16 qkv+rope+bias among them), triton and csgmv tables, split counts past 32, every K split, bf16
// and fp16. The same driver runs on a GPU (test/gpu/skinny-lora-kernel.test.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const engineDir = join(root, 'native/src/cuda/engine');
const includes = ['native/include', 'native/src/cuda', 'native/src/lora', 'native/src/cuda/engine'].map((d) => `-I${join(root, d)}`);

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
const nvcc = which('nvcc');
const cudaInclude = nvcc ? [resolve(dirname(nvcc), '../include'), '/usr/local/cuda/include'].find((d) => existsSync(join(d, 'cuda_runtime.h'))) : undefined;
const skip = !which('g++') ? 'g++ not found' : !cudaInclude ? 'cuda_runtime.h not found (no CUDA toolkit)' : false;

const flags = ['-std=c++17', '-O1', '-Wall', '-Wno-unknown-pragmas', `-I${cudaInclude}`, ...includes];
const emu = ['-include', join(engineDir, 'test/emu/cuda-emu.h')];
const out = mkdtempSync(join(tmpdir(), 'tslora-skinny-lora-emu-'));
after(() => rmSync(out, { recursive: true, force: true }));

function compile(name: string, src: string, extra: string[]): string {
  const obj = join(out, `${name}.o`);
  const r = spawnSync('nice', ['g++', ...flags, ...extra, '-c', src, '-o', obj], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${name} (emulated):\n${r.stdout}${r.stderr}`);
  return obj;
}

test('the skinny GEMM with the LoRA delta in its epilogue is bit-identical to the GEMM + small-step expand (host CUDA emulator, g++)', { skip, timeout: 900_000 }, async () => {
  // @ts-expect-error plain ESM helper without type declarations
  const { transformCuda } = await import('../../native/src/cuda/engine/test/emu/transform.mjs');
  // @ts-expect-error plain ESM helper without type declarations
  const { prepareExpand } = await import('../../native/src/cuda/engine/test/emu/lora-expand-emu.mjs');
  const objects: string[] = [];
  for (const name of ['skinny-gemm', 'kernels']) {
    const src = join(out, `${name}.cpp`);
    writeFileSync(src, transformCuda(readFileSync(join(engineDir, `${name}.cu`), 'utf8')));
    objects.push(compile(name, src, emu));
  }
  const expand = prepareExpand(join(out, 'expand'));
  objects.push(compile('lora_small_expand', expand, [...emu, '-include', join(engineDir, 'test/emu/lora-expand-emu.h')]));
  objects.push(compile('driver', join(engineDir, 'test/skinny-lora-test.cu'), ['-DTSLORA_SKINNY_LORA_EMU', '-x', 'c++']));
  const exe = join(out, 'skinny-lora-emu-test');
  const link = spawnSync('nice', ['g++', ...objects, '-o', exe], { encoding: 'utf8' });
  assert.equal(link.status, 0, `${link.stdout}${link.stderr}`);
  const run = spawnSync(exe, [], { encoding: 'utf8' });
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^\d+ cases, 0 failures$/m);
  const cases = Number(/^(\d+) cases, 0 failures$/m.exec(run.stdout)?.[1]);
  assert.ok(cases >= 100, `cases run: ${cases}`);
});
