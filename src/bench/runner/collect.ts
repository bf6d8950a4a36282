/** Turning load-generator timings into request records, and summing LoRA counters over levels and rounds. */
import type { LoraCounters, RequestRecord } from '../metrics/records.js';
import type { LoadResult } from '../load/generate-load.js';
import { INTERRUPTED } from '../load/stream-request.js';

export function toRecords(
  result: LoadResult,
  ids: { run: string; variant: string; level: string | null; round: number },
  clockZero: number,
): RequestRecord[] {
  // requests cut short by Ctrl-C measured nothing
  return result.timings.filter(({ timing }) => timing.error !== INTERRUPTED).map(({ planned, timing }) => ({
    ...ids,
    index: planned.index,
    adapter: planned.adapter,
    inputTokens: planned.inputTokens,
    requestedOutputTokens: planned.outputTokens,
    outputTokens: timing.outputTokens,
    sentAtMs: timing.sentAt - clockZero,
    ttftMs: timing.ttftMs,
    e2eMs: timing.e2eMs,
    itlMs: timing.itlMs,
    itlSameRead: timing.itlSameRead,
    error: timing.error,
  }));
}

export function addCounters(a: LoraCounters | undefined, b: LoraCounters): LoraCounters {
  if (!a) return { ...b, deltas: { ...b.deltas } };
  const add = (x: number | null, y: number | null) => (x === null && y === null ? null : (x ?? 0) + (y ?? 0));
  const deltas = { ...a.deltas };
  for (const [key, value] of Object.entries(b.deltas)) deltas[key] = (deltas[key] ?? 0) + value;
  return { adapterLoads: add(a.adapterLoads, b.adapterLoads), evictions: add(a.evictions, b.evictions), slotsUsed: b.slotsUsed, slotsTotal: b.slotsTotal, deltas };
}
