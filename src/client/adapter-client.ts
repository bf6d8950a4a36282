/**
 * TsloraClient: the adapter admin API of a running server (spec b.3-b.5), used by `tslora adapter` and by bench.
 * Failures are TsloraErrors whose codes are the server's error_code (already_loaded, not_loaded, incompatible, ...),
 * so the CLI's exit codes follow from exitCodeForCode.
 */
import { TsloraError, type TsloraErrorCode } from '../errors.js';
import type { AdapterListing, AdapterOperationResponse, ModelCard, ModelList } from '../protocol/adapters.js';
import { errorMessageOf, requestJson, type HttpTarget } from './http.js';

export interface TsloraClientOptions {
  url: string;
  apiKey?: string | null;
  timeoutMs?: number;
}

const ADAPTER_CODES = new Set<TsloraErrorCode>([
  'lora_disabled', 'invalid_request', 'already_loaded', 'not_loaded', 'not_found', 'unsupported_adapter',
  'incompatible', 'pinned_limit', 'capacity', 'unauthorized', 'queue_full', 'shutting_down',
]);

/** The error category of a failed operation: the server's error_code, else guessed from SGLang's wording. */
export function categorizeAdapterError(errorCode: unknown, message: string): TsloraErrorCode {
  if (typeof errorCode === 'string' && ADAPTER_CODES.has(errorCode as TsloraErrorCode)) return errorCode as TsloraErrorCode;
  const text = message.toLowerCase();
  if (text.includes('already loaded') || text.includes('already exists')) return 'already_loaded';
  if (text.includes('not loaded') || text.includes('never been loaded') || text.includes('does not exist')) return 'not_loaded';
  if (text.includes('incompatible')) return 'incompatible';
  if (text.includes('starv')) return 'pinned_limit';
  if (text.includes('not enabled')) return 'lora_disabled';
  return 'invalid_request';
}

const HINTS: Partial<Record<TsloraErrorCode, string>> = {
  already_loaded: "Unload it first ('tslora adapter unload NAME') or choose another name.",
  not_loaded: "See the loaded adapters with 'tslora adapter list'.",
  not_found: 'Give the directory that holds adapter_config.json and adapter_model.safetensors (a path on the server machine).',
  lora_disabled: 'Restart the server with --enable-lora (and --max-lora-rank and --lora-target-modules).',
};

export interface PinResult {
  response: AdapterOperationResponse;
  /** 'endpoint': flipped in place by POST /pin_lora_adapter; 'reload': the server lacks it, so unload + load. */
  method: 'endpoint' | 'reload';
}

export class TsloraClient {
  private readonly target: HttpTarget;

  constructor(options: TsloraClientOptions) {
    this.target = { url: options.url.replace(/\/+$/, ''), apiKey: options.apiKey ?? null, timeoutMs: options.timeoutMs ?? 120_000 };
  }

  get url(): string {
    return this.target.url;
  }

  private async operation(path: string, payload: unknown): Promise<AdapterOperationResponse> {
    const { status, body } = await requestJson(this.target, 'POST', path, payload);
    const record = (body !== null && typeof body === 'object' ? body : {}) as Partial<AdapterOperationResponse>;
    if (status >= 200 && status < 300 && record.success !== false) {
      return { ...record, success: true, error_message: record.error_message ?? null, loaded_adapters: record.loaded_adapters ?? {} };
    }
    const message = errorMessageOf(body) ?? `HTTP ${status} without an error message`;
    const code = categorizeAdapterError(record.error_code, message);
    // a tslora server (error_code present) already says what to do; add advice only to other servers' messages
    const serverGaveCode = typeof record.error_code === 'string';
    throw new TsloraError(code, message, { hint: serverGaveCode ? undefined : HINTS[code] });
  }

  loadAdapter(name: string, path: string, options: { pinned?: boolean } = {}): Promise<AdapterOperationResponse> {
    return this.operation('/load_lora_adapter', { lora_name: name, lora_path: path, pinned: options.pinned ?? false });
  }

  unloadAdapter(name: string): Promise<AdapterOperationResponse> {
    return this.operation('/unload_lora_adapter', { lora_name: name });
  }

  /**
   * Sets the pinned flag of a loaded adapter: POST /pin_lora_adapter; a server without that route (404) gets an
   * unload plus a load with the path from GET /v1/models (requests for the adapter fail in between).
   */
  async pinAdapter(name: string, pinned: boolean): Promise<PinResult> {
    try {
      return { response: await this.operation('/pin_lora_adapter', { lora_name: name, pinned }), method: 'endpoint' };
    } catch (error) {
      if (!(error instanceof TsloraError) || error.code !== 'route_not_found') throw error;
    }
    const card = (await this.listModels()).data.find((c) => c.id === name && c.parent !== null);
    if (!card) {
      throw new TsloraError('not_loaded', `adapter '${name}' is not loaded.`, { hint: HINTS.not_loaded });
    }
    if (!card.root) {
      throw new TsloraError('server_error', `the server lists adapter '${name}' without its path (root), so it cannot be reloaded pinned.`);
    }
    await this.unloadAdapter(name);
    try {
      return { response: await this.loadAdapter(name, card.root, { pinned }), method: 'reload' };
    } catch (error) {
      if (error instanceof TsloraError) {
        throw new TsloraError(error.code, `adapter '${name}' was unloaded but loading it again ${pinned ? 'pinned' : 'unpinned'} failed: ${error.message}`, {
          hint: `Load it again with 'tslora adapter load ${name} ${card.root}'.`,
          cause: error,
        });
      }
      throw error;
    }
  }

  async listModels(): Promise<ModelList> {
    const { status, body } = await requestJson(this.target, 'GET', '/v1/models');
    const data = (body as Partial<ModelList> | null)?.data;
    if (status !== 200 || !Array.isArray(data)) {
      throw new TsloraError('server_error', `GET /v1/models answered HTTP ${status} without a model list: ${errorMessageOf(body) ?? JSON.stringify(body)}.`);
    }
    return { object: 'list', data: data as ModelCard[] };
  }

  /** Base card and adapter cards (parent set) of GET /v1/models; pinned is null when the server does not say. */
  async listAdapters(): Promise<AdapterListing> {
    const models = await this.listModels();
    const baseCard = models.data.find((c) => c.parent === null || c.parent === undefined);
    return {
      base: baseCard ? { id: baseCard.id, max_model_len: baseCard.max_model_len ?? null } : null,
      adapters: models.data
        .filter((c) => c.parent !== null && c.parent !== undefined)
        .map((c) => ({ name: c.id, path: c.root ?? null, pinned: typeof c.pinned === 'boolean' ? c.pinned : null })),
    };
  }
}
