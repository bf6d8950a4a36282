// Compiles a small C++ (g++) or CUDA (nvcc) test/benchmark driver, cached under build/lora-drivers/ by a hash of
// every source and header it may include, so repeated test runs on the 2-core CI machine do not recompile.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

function headersUnder(dir, out) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir).sort()) {
    const full = join(dir, entry);
    if (statSync(full).isDirectory()) headersUnder(full, out);
    else if (/\.(h|cuh|hpp|inc)$/.test(entry)) out.push(full);
  }
  return out;
}

/** Returns the path of nvcc, or null when no CUDA compiler is installed. */
export function findNvcc() {
  const probe = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? 'nvcc' : null;
}

export const cppSources = ['native/src/lora/host_adapter.cpp', 'native/src/lora/lora_pool.cpp', 'native/src/lora/lora_apply.cpp', 'native/src/lora/cpu_expand.cpp', 'native/src/lora/cpu_expand_avx512.cpp'];
export const includeDirs = ['native/include', 'native/src/lora', 'native/src/lora/test', 'native/src/cuda'];

/**
 * @param {{ name: string, sources: string[], compiler?: 'g++' | 'nvcc', flags?: string[], libs?: string[] }} spec
 * @returns {string} path of the built executable
 */
export function buildDriver({ name, sources, compiler = 'g++', flags = [], libs = [] }) {
  const files = [...sources.map((s) => join(repoRoot, s)), ...includeDirs.flatMap((d) => headersUnder(join(repoRoot, d), []))];
  const hash = createHash('sha256');
  hash.update([compiler, ...flags, ...libs].join(' '));
  for (const f of files) hash.update(f).update(readFileSync(f));
  const outDir = join(repoRoot, 'build', 'lora-drivers');
  const exe = join(outDir, `${name}-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(exe)) return exe;
  mkdirSync(outDir, { recursive: true });
  const common = ['-std=c++17', '-O2', ...includeDirs.map((d) => `-I${join(repoRoot, d)}`)];
  const absolute = (flag) => (flag.startsWith('-I') && !flag.startsWith('-I/') ? `-I${join(repoRoot, flag.slice(2))}` : flag);
  // Other test runs (other checkouts' `npm test`) may build the same driver at the same time: compile to a private
  // name and rename, so nobody ever runs a half-written executable.
  const partial = `${exe}.${process.pid}.tmp`;
  const args =
    compiler === 'nvcc'
      ? [...common, '-Xcompiler', '-pthread', ...flags.map(absolute), ...sources.map((s) => join(repoRoot, s)), '-o', partial, ...libs]
      : [...common, '-march=native', '-pthread', ...flags.map(absolute), ...sources.map((s) => join(repoRoot, s)), '-o', partial, ...libs];
  const result = spawnSync('nice', [compiler, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`${compiler} failed for ${name}:\n${result.stderr}${result.stdout}`);
  }
  renameSync(partial, exe);
  for (const old of readdirSync(outDir)) // earlier builds of this driver
    if (old.startsWith(`${name}-`) && !old.endsWith('.tmp') && join(outDir, old) !== exe) rmSync(join(outDir, old), { force: true });
  return exe;
}

/** Why a GPU driver test cannot run here (no nvcc, or no NVIDIA GPU visible), or false when it can. */
export function gpuDriverSkipReason() {
  if (!findNvcc()) return 'nvcc not found on PATH';
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (smi.status !== 0 || !/GPU \d+:/.test(smi.stdout)) return 'no NVIDIA GPU visible (nvidia-smi -L)';
  return false;
}
