/**
 * --lora-resolver-dir: on-demand adapters from a shared directory (vLLM's filesystem LoRA resolver rule): adapter
 * `name` lives at DIR/name. Behind a router that may send any adapter to any replica, every replica mounts the same
 * directory and loads an adapter the first time a request names it.
 *
 * Only plain names map to paths (no separators, no leading dot), and the real path of the adapter directory and of
 * each file a reader opens must stay inside the real DIR (checkAllowedAdapterPath of --lora-allowed-dirs, with DIR as
 * the allowed directory), so a symlink cannot lead a request outside it.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TsloraError } from '../errors.js';
import type { AdapterManager } from '../engine/lora/adapter-manager.js';
import { checkAllowedAdapterPath } from './allowed-dirs.js';

const NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

export class AdapterDirectory {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  /** The adapter directory for `name`, or null when the name is not a plain name or DIR/name holds no adapter. */
  pathFor(name: string): string | null {
    if (!NAME_PATTERN.test(name)) return null;
    let real: string;
    try {
      // the --lora-allowed-dirs check with DIR as the only allowed directory: symlinks and adapter files included
      real = checkAllowedAdapterPath(join(this.root, name), [this.root]);
    } catch {
      return null;
    }
    if (!existsSync(join(real, 'adapter_config.json')) || !statSync(real).isDirectory()) return null;
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
