/**
 * Naming rules shared by every option table: camelCase config keys, kebab-case flags, TSLORA_* environment
 * variables, and lookup of an option by any of its spellings (key, flag, alias).
 */
import type { OptionSpec } from './option-types.js';

export function kebabToCamel(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export function camelToKebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `max-loras-per-batch` → `TSLORA_MAX_LORAS_PER_BATCH`. */
export function envNameForFlag(flag: string): string {
  return `TSLORA_${flag.replace(/-/g, '_').toUpperCase()}`;
}

export type OptionInput = Omit<OptionSpec, 'flag' | 'env'> & { flag?: string; env?: string | false };

/** Fills in the conventional flag (kebab-case of the key) and env var (TSLORA_ + flag) of each entry. */
export function defineOptions(entries: OptionInput[]): OptionSpec[] {
  return entries.map((entry) => {
    const flag = entry.flag ?? camelToKebab(entry.key);
    const { env, ...rest } = entry;
    const spec: OptionSpec = { ...rest, flag };
    if (env !== false) spec.env = env ?? envNameForFlag(flag);
    if (spec.type === 'boolean' && spec.negatable === undefined) spec.negatable = true;
    return Object.freeze(spec);
  });
}

/** Finds an option by config key, flag, alias, or the camelCase form of a flag or alias. */
export function findOption(table: readonly OptionSpec[], name: string): OptionSpec | undefined {
  const bare = name.replace(/^--?/, '');
  for (const spec of table) {
    const spellings = [spec.key, spec.flag, ...(spec.aliases ?? [])];
    if (spellings.includes(bare)) return spec;
    if (spellings.some((s) => kebabToCamel(s) === bare)) return spec;
  }
  return undefined;
}

/** Levenshtein distance, for "did you mean" suggestions on unknown keys. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_v, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

export function closestOptionName(table: readonly OptionSpec[], name: string): string | undefined {
  let best: { flag: string; distance: number } | undefined;
  const probe = camelToKebab(name.replace(/^--?/, '')).toLowerCase();
  for (const spec of table) {
    for (const flag of [spec.flag, ...(spec.aliases ?? [])]) {
      const distance = editDistance(probe, flag);
      if (!best || distance < best.distance) best = { flag, distance };
    }
  }
  return best && best.distance <= Math.max(2, Math.floor(probe.length / 4)) ? best.flag : undefined;
}
