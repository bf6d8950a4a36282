/** Where a result was measured (spec g.5): CPU, GPU, memory, OS, Node, tslora version and commit. */
import { readFileSync } from 'node:fs';
import { arch, cpus, hostname, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { PACKAGE_ROOT } from '../config/load-config.js';

export interface BenchEnvironment {
  hostname: string;
  os: string;
  cpu: string;
  cpuCores: number;
  memoryGiB: number;
  gpus: string[];
  node: string;
  tslora: string;
  gitCommit: string | null;
  gitDirty: boolean | null;
  argv: string[];
  /** 1-minute load average when the run started and ended: other work on the machine skews every figure */
  loadAverage: { start: number; end: number | null };
}

async function run(command: string, args: string[]): Promise<string | null> {
  try {
    const result = await execa(command, args, { reject: false, timeout: 10_000, cwd: PACKAGE_ROOT });
    return result.exitCode === 0 ? String(result.stdout).trim() : null;
  } catch {
    return null;
  }
}

/**
 * The commit a run measured. TSLORA_GIT_COMMIT, where set, names it and wins over the checkout's git: a copied tree
 * (the GPU machine's) may carry a .git of another commit (session 20's device calls ran 3e3ba0f under a .git at
 * d67a4d4, whose report then named the wrong commit "with local changes"); its dirty state is then unknown (null).
 */
export async function resolveCommit(
  named: string | undefined,
  git: (args: string[]) => Promise<string | null> = (args) => run('git', args),
): Promise<{ commit: string | null; dirty: boolean | null }> {
  if (named) return { commit: named, dirty: null };
  const commit = await git(['rev-parse', 'HEAD']);
  if (!commit) return { commit: null, dirty: null };
  const status = await git(['status', '--porcelain', '--untracked-files=no']);
  return { commit, dirty: status === null ? null : status.length > 0 };
}

export async function captureEnvironment(): Promise<BenchEnvironment> {
  const cpuList = cpus();
  let version = 'unknown';
  try {
    version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // not fatal
  }
  const gpuText = await run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']);
  const { commit, dirty } = await resolveCommit(process.env.TSLORA_GIT_COMMIT);
  return {
    hostname: hostname(),
    os: `${platform()} ${release()} ${arch()}`,
    cpu: cpuList[0]?.model.trim() ?? 'unknown',
    cpuCores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    gpus: gpuText ? gpuText.split('\n').filter(Boolean) : [],
    node: process.version,
    tslora: version,
    gitCommit: commit,
    gitDirty: dirty,
    argv: process.argv.slice(1),
    loadAverage: { start: round1(loadavg()[0]), end: null },
  };
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Fills in the end-of-run load average. */
export function finishEnvironment(env: BenchEnvironment): BenchEnvironment {
  return { ...env, loadAverage: { ...env.loadAverage, end: round1(loadavg()[0]) } };
}

export function describeHardware(env: BenchEnvironment): string {
  const gpu = env.gpus.length ? env.gpus.join('; ') : 'no GPU';
  return `${env.cpu} (${env.cpuCores} cores), ${env.memoryGiB} GiB RAM, ${gpu}`;
}
