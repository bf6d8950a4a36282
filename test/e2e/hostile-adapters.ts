/**
 * Hostile adapter directories for the hardening tests (issue 13), made at run time under a temporary directory:
 * catastrophic regexes in target_modules / rank_pattern, a FIFO, directories and /dev/zero where files belong, a
 * symlink to /etc/passwd as the weights, and symlinks that lead out of an allowed directory.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './server-harness.js';

export const DEMO_ADAPTER = join(REPO, 'models/demo/adapters/upper');

export interface HostileSet {
  root: string;
  /** name → adapter directory */
  dirs: Record<string, string>;
  remove(): void;
}

function copyAdapter(dir: string, configEdit?: (config: Record<string, unknown>) => void): string {
  cpSync(DEMO_ADAPTER, dir, { recursive: true });
  if (configEdit) {
    const path = join(dir, 'adapter_config.json');
    const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    configEdit(config);
    writeFileSync(path, JSON.stringify(config));
  }
  return dir;
}

export function makeHostileAdapters(): HostileSet {
  const root = mkdtempSync(join(tmpdir(), 'tslora-hostile-'));
  const at = (name: string) => join(root, name);
  const dirs: Record<string, string> = {};
  dirs.good = copyAdapter(at('good'));
  dirs.regexTargets = copyAdapter(at('regex-targets'), (c) => (c.target_modules = '(.*.*.*.*.*.*)*X'));
  dirs.regexRankPattern = copyAdapter(at('regex-rank-pattern'), (c) => (c.rank_pattern = { '(a|a?)+(b|b?)+(.*.*.*)*$': 4 }));
  dirs.lookaround = copyAdapter(at('lookaround'), (c) => (c.target_modules = '(?=.*q_proj).*'));
  dirs.fifoConfig = copyAdapter(at('fifo-config'));
  rmSync(join(dirs.fifoConfig, 'adapter_config.json'));
  execFileSync('mkfifo', [join(dirs.fifoConfig, 'adapter_config.json')]);
  dirs.dirConfig = copyAdapter(at('dir-config'));
  rmSync(join(dirs.dirConfig, 'adapter_config.json'));
  mkdirSync(join(dirs.dirConfig, 'adapter_config.json'));
  dirs.dirWeights = copyAdapter(at('dir-weights'));
  rmSync(join(dirs.dirWeights, 'adapter_model.safetensors'));
  mkdirSync(join(dirs.dirWeights, 'adapter_model.safetensors'));
  dirs.zeroConfig = copyAdapter(at('zero-config'));
  rmSync(join(dirs.zeroConfig, 'adapter_config.json'));
  symlinkSync('/dev/zero', join(dirs.zeroConfig, 'adapter_config.json'));
  dirs.passwdWeights = copyAdapter(at('passwd-weights'));
  rmSync(join(dirs.passwdWeights, 'adapter_model.safetensors'));
  symlinkSync('/etc/passwd', join(dirs.passwdWeights, 'adapter_model.safetensors'));
  return { root, dirs, remove: () => rmSync(root, { recursive: true, force: true }) };
}
