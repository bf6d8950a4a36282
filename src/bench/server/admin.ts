/** The few non-generation calls bench makes: registered adapters, runtime loads, /metrics, server info. */
import { request } from 'undici';
import { TsloraError } from '../../errors.js';
import { parsePrometheus } from './prometheus.js';

function headers(apiKey: string | null): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  return h;
}

async function getJson(url: string, apiKey: string | null): Promise<unknown> {
  const response = await request(url, { method: 'GET', headers: headers(apiKey), headersTimeout: 10_000, bodyTimeout: 10_000 });
  if (response.statusCode !== 200) {
    await response.body.dump();
    return null;
  }
  return response.body.json();
}

/** Adapter names registered on the server (the /v1/models cards that have a parent), or null if unknown. */
export async function registeredAdapters(baseUrl: string, apiKey: string | null): Promise<string[] | null> {
  try {
    const body = (await getJson(`${baseUrl}/v1/models`, apiKey)) as { data?: { id: string; parent?: string | null }[] } | null;
    if (!body?.data) return null;
    return body.data.filter((card) => card.parent).map((card) => card.id);
  } catch {
    return null;
  }
}

export async function loadAdapter(baseUrl: string, apiKey: string | null, name: string, path: string): Promise<void> {
  const response = await request(`${baseUrl}/load_lora_adapter`, {
    method: 'POST',
    headers: headers(apiKey),
    body: JSON.stringify({ lora_name: name, lora_path: path }),
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) {
    let message = text;
    try {
      message = (JSON.parse(text) as { error_message?: string }).error_message ?? text;
    } catch {
      // keep raw text
    }
    throw new TsloraError('server_error', `loading adapter '${name}' from ${path} failed (HTTP ${response.statusCode}): ${message}`);
  }
}

export async function scrapeMetrics(baseUrl: string, apiKey: string | null): Promise<Map<string, number>> {
  try {
    const response = await request(`${baseUrl}/metrics`, { method: 'GET', headers: headers(apiKey), headersTimeout: 5000, bodyTimeout: 5000 });
    const text = await response.body.text();
    return response.statusCode === 200 ? parsePrometheus(text) : new Map();
  } catch {
    return new Map();
  }
}

export async function serverInfo(baseUrl: string, apiKey: string | null): Promise<unknown> {
  try {
    return await getJson(`${baseUrl}/get_server_info`, apiKey);
  } catch {
    return null;
  }
}
