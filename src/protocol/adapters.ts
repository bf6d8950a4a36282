/**
 * Wire types of the adapter admin API (spec b.3, b.4, b.5), shared by the server, the `tslora adapter` client and
 * bench. Request schemas are zod; `error_code` is the TsloraErrorCode string of src/errors.ts.
 */
import { z } from 'zod';

/** POST /load_lora_adapter and POST /v1/load_lora_adapter. A client-sent id is ignored (extra keys pass). */
export const loadAdapterRequestSchema = z.looseObject({
  lora_name: z.string().trim().min(1, 'lora_name must be a non-empty string'),
  lora_path: z.string().trim().min(1, 'lora_path must be a non-empty string'),
  pinned: z.boolean().default(false),
  /** vLLM: replace an adapter of that name (atomic unload + load). */
  load_inplace: z.boolean().optional(),
  /**
   * vLLM: the parent shown on the adapter's model card. The gateway's LoRA syncer always sends it (often ""); the
   * adapter is checked against the one base model this server runs, so the value is accepted and not used.
   */
  base_model_name: z.string().optional(),
});
export type LoadAdapterRequest = z.input<typeof loadAdapterRequestSchema>;

const NAME_CHARS = /^[A-Za-z0-9._-]+$/;
const PATH_NAME_CHARS = /^[A-Za-z0-9._\/-]+$/;
const RESERVED_NAMES = new Set(['.', '..', '__proto__', 'constructor', 'prototype']);
export const MAX_ADAPTER_NAME_CHARS = 256;

/**
 * Why an adapter name cannot be registered, or null. Names are [A-Za-z0-9._-]: no ':' (it splits
 * 'base:adapter'), no markup, no prototype keys; '/' only in a path-named adapter (name = its path).
 */
export function adapterNameProblem(name: string, path: string): string | null {
  if (name.length > MAX_ADAPTER_NAME_CHARS) return `lora_name is ${name.length} characters long; at most ${MAX_ADAPTER_NAME_CHARS} are allowed`;
  if (RESERVED_NAMES.has(name)) return `lora_name '${name}' is reserved; choose another name`;
  const allowed = name === path ? PATH_NAME_CHARS : NAME_CHARS;
  if (!allowed.test(name)) {
    return `lora_name ${JSON.stringify(name.slice(0, 64))} may contain only letters, digits, '.', '_' and '-'${name === path ? " and '/'" : " ('/' only when the name is the adapter's path)"}`;
  }
  return null;
}

/** POST /unload_lora_adapter and POST /v1/unload_lora_adapter. */
export const unloadAdapterRequestSchema = z.looseObject({
  lora_name: z.string().trim().min(1, 'lora_name must be a non-empty string'),
});
export type UnloadAdapterRequest = z.input<typeof unloadAdapterRequestSchema>;

/** POST /pin_lora_adapter (tslora extension): flips the pinned flag of a loaded adapter in place. */
export const pinAdapterRequestSchema = z.looseObject({
  lora_name: z.string().trim().min(1, 'lora_name must be a non-empty string'),
  pinned: z.boolean(),
});
export type PinAdapterRequest = z.input<typeof pinAdapterRequestSchema>;

/** The response of load, unload and pin: 200 on success, 400 on failure (SGLang), 401 without a valid key. */
export interface AdapterOperationResponse {
  success: boolean;
  error_message: string | null;
  /** tslora's machine-readable category (b.4): already_loaded, not_loaded, not_found, incompatible, ... */
  error_code?: string | null;
  /** The registry after the operation: name → path (minus anything the host-tier cap just evicted). */
  loaded_adapters: Record<string, string>;
  /** tslora: names whose pinned flag is set, when the server reports it. */
  pinned_adapters?: string[];
  rid?: string | null;
  http_worker_ipc?: null;
}

/** One card of GET /v1/models. Adapter cards have parent = the served name and root = the adapter path. */
export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  root: string | null;
  parent: string | null;
  max_model_len: number | null;
  /** tslora extension on adapter cards. */
  pinned?: boolean;
}

export interface ModelList {
  object: 'list';
  data: ModelCard[];
}

/** What `tslora adapter list --json` prints. */
export interface AdapterListing {
  base: { id: string; max_model_len: number | null } | null;
  adapters: Array<{ name: string; path: string | null; pinned: boolean | null }>;
}

/** Error body of native routes ({error: {message}}) and OpenAI routes ({error: {message, type, param, code}}). */
export interface ErrorBody {
  error: { message: string; type?: string; param?: string | null; code?: string | number | null };
  object?: 'error';
  message?: string;
}
