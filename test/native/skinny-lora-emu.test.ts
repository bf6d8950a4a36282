// The skinny GEMM with the LoRA delta in its epilogue (native/src/cuda/engine/skinny-gemm.h SkinnyLora) on the host
// CUDA emulator: native/src/cuda/engine/test/skinny-lora-test.cu built with -DTSLORA_SKINNY_LORA_EMU against
// skinny-gemm.cu and kernels.cu (rewritten by emu/transform.mjs) and the real small-step expand (lora_small_expand.cu,
// rewritten by emu/lora-expand-emu.mjs). Plain, SwiGLU and qkv-RoPE epilogues with the delta must be bit-identical to
// the skinny GEMM + loraExpandSmall (+ launchSwiglu / launchQkvPost) for 1 and 2 rows, base rows beside adapter rows,
// ranks 5..64, triton and csgmv tables, split counts past 32, every K split, bf16 and fp16. The same driver runs on a
// GPU (test/gpu/skinny-lora-kernel.test.ts).
// The shrink inside the skinny GEMM's launch (engine/skinny-shrink.cuh; emu/skinny-shrink-emu.mjs prepares it) runs
// with the whole grid interleaved (cuda-emu.h gridTogether, the last block first), against the same epilogue fed with
// the partials it wrote, which must match x·Aᵀ in fp64; and a copy of skinny-gemm.cu with the GEMM blocks' wait for
// the shrink blocks removed must fail (they read U before it is written).
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
const objects = new Map<string, string>();  // name -> object, in link order
function compile(name: string, src: string, extra: string[]): void {
  const obj = join(out, `${name}.o`);
  const r = spawnSync('nice', ['g++', ...flags, ...extra, '-c', src, '-o', obj], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${name} (emulated):\n${r.stdout}${r.stderr}`);
  objects.set(name, obj);
}
// Links the objects (with `gemm` as the skinny GEMM's) and runs the driver.
function linkAndRun(gemm: string, env: Record<string, string> = {}): { status: number | null; stdout: string } {
  const exe = join(out, `skinny-lora-emu-test-${objects.size}-${gemm.length}`);
  const objs = [...objects.entries()].map(([name, obj]) => (name === 'skinny-gemm' ? gemm : obj));
  const link = spawnSync('nice', ['g++', ...objs, '-o', exe], { encoding: 'utf8' });
  assert.equal(link.status, 0, `${link.stdout}${link.stderr}`);
  const run = spawnSync(exe, [], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: run.status, stdout: `${run.stdout}${run.stderr}` };
}
const waitCall = 'skinny_shrink::waitForShrink(lora);';

test('the skinny GEMM with the LoRA delta in its epilogue is bit-identical to the GEMM + small-step expand (host CUDA emulator, g++)', { skip, timeout: 900_000 }, async () => {
  // @ts-expect-error plain ESM helper without type declarations
  const { transformCuda } = await import('../../native/src/cuda/engine/test/emu/transform.mjs');
  // @ts-expect-error plain ESM helper without type declarations
  const { prepareSkinnyShrink } = await import('../../native/src/cuda/engine/test/emu/skinny-shrink-emu.mjs');
  const prepared = prepareSkinnyShrink(join(out, 'src'), (src: string) => {
    assert.ok(src.includes(waitCall), `skinny-gemm.cu no longer calls ${waitCall}`);
    return src;
  });
  const shrinkEmu = [...emu, '-include', join(engineDir, 'test/emu/skinny-shrink-emu.h')];
  compile('skinny-gemm', prepared.gemm, shrinkEmu);
  const kernels = join(out, 'kernels.cpp');
  writeFileSync(kernels, transformCuda(readFileSync(join(engineDir, 'kernels.cu'), 'utf8')));
  compile('kernels', kernels, emu);
  compile('lora_small_expand', prepared.expand, [...emu, '-include', join(engineDir, 'test/emu/lora-expand-emu.h')]);
  compile('grid-together', join(engineDir, 'test/emu/grid-together.cpp'), []);
  compile('driver', join(engineDir, 'test/skinny-lora-test.cu'), ['-DTSLORA_SKINNY_LORA_EMU', '-x', 'c++']);
  const run = linkAndRun(objects.get('skinny-gemm')!);
  assert.equal(run.status, 0, run.stdout);
  assert.match(run.stdout, /^\d+ cases, 0 failures$/m);
  const inLaunch = /^(\d+) of them also with the shrink inside the launch$/m.exec(run.stdout);
  assert.ok(inLaunch && Number(inLaunch[1]) >= 40, `cases with the shrink in the launch: ${inLaunch?.[1]}`);
});

test('without the wait for the shrink blocks, the emulated grid reads U before it is written (the check above can fail)', { skip, timeout: 900_000 }, async () => {
  assert.ok(objects.has('driver'), 'the build of the test above');
  // @ts-expect-error plain ESM helper without type declarations
  const { prepareSkinnyShrink } = await import('../../native/src/cuda/engine/test/emu/skinny-shrink-emu.mjs');
  const mutant = prepareSkinnyShrink(join(out, 'mutant'), (src: string) => src.replace(waitCall, ''));
  const obj = join(out, 'skinny-gemm-mutant.o');
  const r = spawnSync('nice', ['g++', ...flags, ...emu, '-include', join(engineDir, 'test/emu/skinny-shrink-emu.h'), '-c', mutant.gemm, '-o', obj], { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const run = linkAndRun(obj, { SKINNY_LORA_TEST_STOP_AT_FAILURE: '1' });
  assert.equal(run.status, 1, run.stdout);
  assert.match(run.stdout, /^FAIL .* shrink in launch #1/m);
});
