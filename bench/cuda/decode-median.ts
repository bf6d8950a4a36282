/**
 * One decode report from several processes' decode.ts JSONs of the same configuration: per (backend, batch, scenario)
 * row the median step time and the median floor fraction over the processes that measured it, with how many did and
 * their range. Between processes an 8B step moves ±3-5 % on the same machine (bench/cuda/README.md, session 17), more
 * than several levers change, so issue #12's table takes the median of a few processes instead of one.
 */
import type { DecodeReport, DecodeRow } from './step-targets.js';

export interface MedianDecodeRow extends DecodeRow {
  processes: number;
  stepMsRange: [number, number];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function medianDecodeReport(reports: DecodeReport[]): DecodeReport | undefined {
  if (reports.length === 0) return undefined;
  if (reports.length === 1) return reports[0];
  const groups = new Map<string, DecodeRow[]>();
  for (const report of reports)
    for (const row of report.results) {
      const key = `${row.loraBackend}|${row.batch}|${row.scenario}`;
      groups.set(key, [...(groups.get(key) ?? []), row]);
    }
  const results: MedianDecodeRow[] = [...groups.values()].map((rows) => {
    const steps = rows.map((r) => r.stepMs);
    const fractions = rows.map((r) => r.floorFraction).filter((f): f is number => typeof f === 'number');
    return {
      ...rows[0],
      stepMs: median(steps),
      floorFraction: fractions.length === rows.length ? median(fractions) : null,
      processes: rows.length,
      stepMsRange: [Math.min(...steps), Math.max(...steps)],
    };
  });
  return { gpu: reports[0].gpu, results };
}
