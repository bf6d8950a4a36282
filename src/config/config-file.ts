/** Reads the JSON file named by --config (or TSLORA_CONFIG); the one place of src/config that touches the disk. */
import { readFileSync } from 'node:fs';
import { TsloraError } from '../errors.js';
import type { ConfigFileValues } from './layers.js';

export function readConfigFile(path: string): ConfigFileValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : (error as Error).message;
    throw new TsloraError('usage', `cannot read config file ${path}: ${reason}.`, {
      hint: 'Pass --config the path of a JSON file, or leave --config out.',
      param: 'config',
      cause: error,
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TsloraError('usage', `config file ${path} is not valid JSON: ${(error as Error).message}.`, {
      hint: 'The file must hold one JSON object, e.g. {"port": 8000, "lora-paths": ["sql=./adapters/sql"]}.',
      param: 'config',
      cause: error,
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TsloraError('usage', `config file ${path} must hold a JSON object of options (got ${Array.isArray(parsed) ? 'a list' : typeof parsed}).`, {
      hint: 'Write {"port": 8000, ...} with flag names or camelCase keys.',
      param: 'config',
    });
  }
  return { path, values: parsed as Record<string, unknown> };
}
