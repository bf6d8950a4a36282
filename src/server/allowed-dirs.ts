/**
 * --lora-allowed-dirs: which directories a run-time adapter load may read from. Paths are compared after
 * resolving symlinks (of the allowed directories too), so a link inside an allowed directory that points outside
 * it is refused, and so is an adapter file inside it that links out. The refusal says nothing about whether the
 * path exists. Used by the load route; on-demand loading from a shared directory reuses it.
 */
import { realpathSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { TsloraError } from '../errors.js';

/** The files a reader opens inside an adapter directory; each must resolve inside the allowed directories too. */
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors', 'adapter_model.bin', 'added_tokens.json'];

function realOrResolved(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function inside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

function forbidden(given: string): TsloraError {
  return new TsloraError('forbidden_path', `adapter path '${given}' is outside the directories this server may load adapters from (--lora-allowed-dirs)`, {
    hint: 'Place the adapter under one of those directories, or ask the operator to allow its directory.',
    param: 'lora_path',
  });
}

/**
 * Returns the real path of `path` when `allowedDirs` is empty or it lies inside one of them (with every adapter
 * file in it); throws 403 forbidden_path otherwise.
 */
export function checkAllowedAdapterPath(path: string, allowedDirs: readonly string[]): string {
  const real = realOrResolved(path);
  if (allowedDirs.length === 0) return real;
  const roots = allowedDirs.map(realOrResolved);
  const allowed = (p: string) => roots.some((root) => inside(p, root));
  if (!allowed(real)) throw forbidden(path);
  for (const file of ADAPTER_FILES) {
    if (!allowed(realOrResolved(join(real, file)))) throw forbidden(path);
  }
  return real;
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h.startsWith('127.') || h === '::ffff:127.0.0.1';
}
