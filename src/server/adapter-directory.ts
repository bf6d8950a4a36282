/**
 * --lora-resolver-dir: on-demand adapters from a shared directory (vLLM's filesystem LoRA resolver rule): adapter
 * `name` lives at DIR/name. Behind a router that may send any adapter to any replica, every replica mounts the same
 * directory and loads an adapter the first time a request names it.
 *
 * Only plain names map to paths (no separators, no leading dot), and the real path of the adapter directory and of
 * each file a reader opens must stay inside the real DIR, so a symlink cannot lead a request outside it.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { TsloraError } from '../errors.js';
import type { AdapterManager } from '../engine/lora/adapter-manager.js';

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;
/** The files an adapter reader opens inside an adapter directory. */
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors', 'adapter_model.bin'];

function realOrNull(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

export class AdapterDirectory {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  private inside(path: string): boolean {
    const root = realOrNull(this.root);
    if (root === null) return false;
    return path.startsWith(root.endsWith(sep) ? root : root + sep);
  }

  /** The adapter directory for `name`, or null when the name is not a plain name or DIR/name holds no adapter. */
  pathFor(name: string): string | null {
    if (!NAME_PATTERN.test(name)) return null;
    const real = realOrNull(join(this.root, name));
    if (real === null || !this.inside(real) || !statSync(real).isDirectory()) return null;
    if (!existsSync(join(real, 'adapter_config.json'))) return null;
    for (const file of ADAPTER_FILES) {
      const target = realOrNull(join(real, file));
      if (target !== null && !this.inside(target)) return null;
    }
    return real;
  }

  /**
   * Loads every adapter in `names` that is neither loaded nor known (an explicit unload forgets a name, so it is
   * looked up here again) and that DIR holds. Names DIR does not hold are left for the caller's not_loaded error.
   */
  async loadMissing(adapters: AdapterManager, names: ReadonlyArray<string | null>): Promise<void> {
    for (const name of new Set(names)) {
      if (!name || adapters.registry.get(name) || adapters.registry.knownPath(name)) continue;
      const path = this.pathFor(name);
      if (path === null) continue;
      // two requests may race to load the same name: the second one finds it loaded
      await adapters.load(name, path, false).catch((error: unknown) => {
        if (!(error instanceof TsloraError && error.code === 'already_loaded')) throw error;
      });
    }
  }
}
