/**
 * Reads the Prometheus text of GET /metrics and picks out the LoRA figures bench reports (spec c.11): device
 * slots used/total, adapter loads and evictions. Metric names are matched loosely (tslora_, sglang: prefixes,
 * per-tier labels) so that the dashboard works against any server that exports them.
 */
import type { LoraCounters } from '../metrics/records.js';

/** `name{labels}` → value, for every sample line. */
export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[2]);
    if (!Number.isNaN(value)) samples.set(match[1], value);
  }
  return samples;
}

const baseName = (key: string) => key.replace(/\{.*$/, '');
const isHistogramPart = (key: string) => /(_bucket|_sum|_count|seconds|latency|_ms)$/.test(baseName(key)) || /seconds|latency/.test(baseName(key));

function pick(samples: Map<string, number>, pattern: RegExp): [string, number][] {
  return [...samples].filter(([key]) => pattern.test(baseName(key)) && !isHistogramPart(key) && !/waiting/.test(key));
}

/** Prefer the device tier when loads/evictions are exported per tier. */
function preferDevice(entries: [string, number][]): [string, number][] {
  const device = entries.filter(([key]) => /device|slot|gpu/.test(key));
  return device.length > 0 ? device : entries;
}

export function slotGauges(samples: Map<string, number>): { used: number | null; total: number | null } {
  const used = pick(samples, /lora.*slots?_used$/i);
  const total = pick(samples, /lora.*slots?_(total|capacity)$/i);
  return { used: used.length ? used[0][1] : null, total: total.length ? total[0][1] : null };
}

export function loraCounters(before: Map<string, number>, after: Map<string, number>): LoraCounters {
  const deltas: Record<string, number> = {};
  for (const [key, value] of after) {
    if (!/lora|adapter/i.test(key) || isHistogramPart(key)) continue;
    deltas[key] = value - (before.get(key) ?? 0);
  }
  const sumOf = (pattern: RegExp) => {
    const entries = preferDevice(pick(after, pattern));
    if (entries.length === 0) return null;
    return entries.reduce((n, [key, value]) => n + value - (before.get(key) ?? 0), 0);
  };
  const slots = slotGauges(after);
  return {
    adapterLoads: sumOf(/(lora|adapter).*loads?(_total)?$/i),
    evictions: sumOf(/(lora|adapter).*evictions?(_total)?$/i),
    slotsUsed: slots.used,
    slotsTotal: slots.total,
    deltas,
  };
}
