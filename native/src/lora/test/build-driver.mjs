// Compiles a small C++ (g++) or CUDA (nvcc) test/benchmark driver, cached under build/lora-drivers/ by a hash of
// every source and header it may include, so repeated test runs on the 2-core CI machine do not recompile.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
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
  const base = compiler === 'nvcc' ? [...common, '-Xcompiler', '-pthread'] : [...common, '-march=native', '-pthread'];
  const compileFlags = [...base, ...flags.map(absolute)];
  const sourcePaths = sources.map((s) => join(repoRoot, s));
  const result = spawnSync('bash', ['-c', compileAndLinkScript(compiler, compileFlags, sourcePaths, `${partial}.objs`, partial, libs)], {
    encoding: 'utf8',
  });
  rmSync(`${partial}.objs`, { recursive: true, force: true });
  if (result.status !== 0) {
    rmSync(partial, { force: true });
    throw new Error(`${compiler} failed for ${name}:\n${result.stderr}${result.stdout}`);
  }
  renameSync(partial, exe);
  for (const old of readdirSync(outDir)) // earlier builds of this driver
    if (old.startsWith(`${name}-`) && !old.endsWith('.tmp') && join(outDir, old) !== exe) rmSync(join(outDir, old), { force: true });
  return exe;
}

const shellQuote = (arg) => `'${String(arg).replaceAll("'", "'\\''")}'`;

/**
 * A bash script that compiles every source to its own object file, one compiler per CPU at a time (nvcc runs
 * one translation unit after another when handed them all; the GPU machine's 16 cores built the LoRA drivers in
 * > 170 s that way), then links. No source shares device code with another (no -rdc), so separate objects link to
 * the same program as one compiler call. Exits non-zero, with every compiler's output, when any step fails.
 */
function compileAndLinkScript(compiler, compileFlags, sourcePaths, objDir, out, libs) {
  const jobs = Math.max(1, Math.min(sourcePaths.length, availableParallelism()));
  const objects = sourcePaths.map((s, i) => join(objDir, `${i}-${s.split('/').pop()}.o`));
  const compiles = sourcePaths.map((s, i) => [compiler, ...compileFlags, '-c', s, '-o', objects[i]].map(shellQuote).join(' '));
  const link = [compiler, ...compileFlags.filter((f) => !f.startsWith('-gencode') && !f.startsWith('arch=')), ...objects, '-o', out, ...libs];
  // Batches of `jobs` compilers, each job waited for by its own pid. The pool this had before (`wait -n` for whichever
  // job ends next) failed one CI run in session 25 with no compiler output at all, and passed on the rerun; a wait per
  // pid takes each job's own status, and a failing job now names its source and status on stderr.
  const batches = [];
  for (let i = 0; i < compiles.length; i += jobs) batches.push(compiles.slice(i, i + jobs).map((c, k) => [c, sourcePaths[i + k]]));
  return [
    'set -u', `mkdir -p ${shellQuote(objDir)}`, 'fail=0',
    ...batches.flatMap((batch) => [
      'pids=()',
      ...batch.map(([c]) => `nice ${c} & pids+=($!)`),
      ...batch.map(([, source], k) => `wait "\${pids[${k}]}" || { echo ${shellQuote(`compile of ${source} failed`)}": status $?" >&2; fail=1; }`),
    ]),
    '(( fail == 0 )) || exit 1',
    `nice ${link.map(shellQuote).join(' ')}`,
  ].join('\n');
}

/** Why a GPU driver test cannot run here (no nvcc, or no NVIDIA GPU visible), or false when it can. */
export function gpuDriverSkipReason() {
  if (!findNvcc()) return 'nvcc not found on PATH';
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (smi.status !== 0 || !/GPU \d+:/.test(smi.stdout)) return 'no NVIDIA GPU visible (nvidia-smi -L)';
  return false;
}
