/**
 * Finds, parses and validates a bench config. The argument is a path, or the name of a bundled config in
 * bench-configs/ (with or without .json). Errors are usage errors that name the file and the JSON path.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { TsloraError } from '../../errors.js';
import { benchConfigSchema, type BenchConfig } from './schema.js';

/** Repository / package root (this file is src/bench/config or dist/bench/config). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BUNDLED_CONFIG_DIR = join(PACKAGE_ROOT, 'bench-configs');

export interface LoadedConfig {
  config: BenchConfig;
  /** absolute path of the file */
  path: string;
}

export function listBundledConfigs(): { name: string; description: string }[] {
  if (!existsSync(BUNDLED_CONFIG_DIR)) return [];
  return readdirSync(BUNDLED_CONFIG_DIR)
    .filter((f) => f.endsWith('.json') && !f.startsWith('schema'))
    .sort()
    .map((file) => {
      let description = '';
      try {
        description = String((JSON.parse(readFileSync(join(BUNDLED_CONFIG_DIR, file), 'utf8')) as { description?: string }).description ?? '');
      } catch {
        description = '(unreadable)';
      }
      return { name: file.replace(/\.json$/, ''), description };
    });
}

export function resolveConfigPath(arg: string): string {
  const candidates = [resolve(arg), resolve(`${arg}.json`)];
  if (!arg.includes('/') && !isAbsolute(arg)) candidates.push(join(BUNDLED_CONFIG_DIR, arg), join(BUNDLED_CONFIG_DIR, `${arg}.json`));
  const found = candidates.find((p) => existsSync(p) && !p.endsWith('/'));
  if (!found) {
    const bundled = listBundledConfigs().map((c) => c.name).join(', ') || 'none';
    throw new TsloraError('usage', `bench config '${arg}' not found.`, {
      hint: `Give a path to a JSON file or one of the bundled configs: ${bundled}.`,
    });
  }
  return found;
}

/** "variants[1].flags: expected record" lines, one per zod issue. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.reduce<string>((acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)), '');
      return `  ${path || '(top level)'}: ${issue.message}`;
    })
    .join('\n');
}

export function parseBenchConfig(json: unknown, source: string): BenchConfig {
  const result = benchConfigSchema.safeParse(json);
  if (!result.success) {
    throw new TsloraError('usage', `invalid bench config ${source}:\n${formatZodIssues(result.error)}`, {
      hint: 'See bench-configs/*.json for working examples and `tslora bench --help` for the fields.',
    });
  }
  return result.data;
}

export function loadBenchConfig(arg: string): LoadedConfig {
  const path = resolveConfigPath(arg);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TsloraError('usage', `bench config ${path} is not valid JSON: ${(error as Error).message}`);
  }
  const config = parseBenchConfig(json, path);
  return { config: resolveRelativePaths(config, dirname(path)), path };
}

/** Paths in a config are relative to the config file's directory (like `tslora serve --config`). */
function resolveRelativePaths(config: BenchConfig, baseDir: string): BenchConfig {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const model = 'path' in config.model ? { path: abs(config.model.path) } : config.model;
  let adapters = config.adapters;
  if ('paths' in adapters) {
    adapters = Array.isArray(adapters.paths)
      ? { paths: adapters.paths.map(abs) }
      : { paths: Object.fromEntries(Object.entries(adapters.paths).map(([name, p]) => [name, abs(p)])) };
  }
  return { ...config, model, adapters };
}
