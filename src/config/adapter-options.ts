/**
 * The option table of `tslora adapter load|unload|pin|unpin|list` (talks to a running server), and its resolver
 * (defaults < env < flags; the adapter commands read no config file).
 */
import { TsloraError } from '../errors.js';
import { layerValues } from './layers.js';
import { defineOptions } from './option-names.js';

export const ADAPTER_GROUPS = { connection: 'Connection', output: 'Output' } as const;

export const DEFAULT_SERVER_URL = 'http://127.0.0.1:30000';

export const adapterOptions = defineOptions([
  { key: 'url', type: 'string', valueName: 'URL', defaultValue: DEFAULT_SERVER_URL, group: ADAPTER_GROUPS.connection, help: 'Base URL of the tslora (or SGLang) server.' },
  { key: 'apiKey', type: 'string', valueName: 'KEY', group: ADAPTER_GROUPS.connection, help: 'API key sent as "Authorization: Bearer KEY" (the server\'s --api-key).' },
  { key: 'timeout', type: 'float', valueName: 'SECONDS', defaultValue: 120, group: ADAPTER_GROUPS.connection, help: 'Give up when the server has not answered within this time (an unload waits for running requests).' },
  { key: 'json', type: 'boolean', defaultValue: false, group: ADAPTER_GROUPS.output, help: 'Print machine-readable JSON on stdout instead of text.' },
]);

/** Options of `tslora adapter load` only. */
export const adapterLoadOptions = defineOptions([
  { key: 'pinned', type: 'boolean', defaultValue: false, env: false, negatable: false, group: 'Load', help: 'Pin the adapter: it keeps its device slot and is never evicted (at most max-loras-per-batch − 1 may be).' },
]);

export interface AdapterCliConfig {
  url: string;
  apiKey: string | null;
  timeoutMs: number;
  json: boolean;
}

export function resolveAdapterCliConfig(argvValues: Record<string, unknown>, env: Record<string, string | undefined> = {}): AdapterCliConfig {
  const values = layerValues(adapterOptions, argvValues, env);
  const url = values.get('url')?.value as string;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    parsed = new URL('invalid:');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TsloraError('usage', `--url must be an http:// or https:// URL (got ${url}).`, {
      hint: `For a local server: --url ${DEFAULT_SERVER_URL}`,
      param: 'url',
    });
  }
  const timeoutSeconds = values.get('timeout')?.value as number;
  if (!(timeoutSeconds > 0)) {
    throw new TsloraError('usage', `--timeout must be a positive number of seconds (got ${timeoutSeconds}).`, {
      hint: 'For example --timeout 30.',
      param: 'timeout',
    });
  }
  return Object.freeze({
    url: url.replace(/\/+$/, ''),
    apiKey: (values.get('apiKey')?.value as string | undefined) ?? null,
    timeoutMs: Math.round(timeoutSeconds * 1000),
    json: values.get('json')?.value as boolean,
  });
}
