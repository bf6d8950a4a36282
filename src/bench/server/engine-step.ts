/**
 * The server's own forward-step time over one measured window: the delta of the `tslora_engine_step_seconds`
 * histogram (phase="decode") between two /metrics scrapes, with its p50 read from the buckets (linear inside the
 * bucket that holds the median, as Prometheus' histogram_quantile does) and its mean from _sum / _count.
 * Issue #12's "server ITL p50 minus engine step" subtracts this from the same window's ITL p50.
 */
import type { EngineStepFigures } from '../metrics/records.js';

const METRIC = 'tslora_engine_step_seconds';

/** Cumulative bucket counts by upper bound (seconds), +Inf last, plus count and sum, of one phase. */
export interface StepHistogram {
  buckets: Array<[le: number, cumulative: number]>;
  count: number;
  sumS: number;
}

export function readStepHistogram(samples: Map<string, number>, phase = 'decode'): StepHistogram | null {
  const buckets: Array<[number, number]> = [];
  let count: number | null = null;
  let sumS = 0;
  for (const [key, value] of samples) {
    if (!key.startsWith(METRIC) || !key.includes(`phase="${phase}"`)) continue;
    if (key.startsWith(`${METRIC}_bucket`)) {
      const le = /le="([^"]+)"/.exec(key)?.[1];
      if (le !== undefined) buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), value]);
    } else if (key.startsWith(`${METRIC}_count`)) count = value;
    else if (key.startsWith(`${METRIC}_sum`)) sumS = value;
  }
  if (count === null) return null;
  buckets.sort((a, b) => a[0] - b[0]);
  return { buckets, count, sumS };
}

/** after − before (a missing `before` = the server's first scrape: everything counts). */
export function stepHistogramDelta(before: StepHistogram | null, after: StepHistogram | null): StepHistogram | null {
  if (!after) return null;
  if (!before) return after;
  return combine(after, before, -1);
}

export function addStepHistograms(a: StepHistogram | null | undefined, b: StepHistogram | null): StepHistogram | null {
  if (!a) return b;
  if (!b) return a;
  return combine(a, b, 1);
}

/** a + sign·b, bucket by bucket (b's bounds looked up in a's; a bound b lacks counts 0). */
function combine(a: StepHistogram, b: StepHistogram, sign: 1 | -1): StepHistogram {
  const other = new Map(b.buckets);
  return {
    buckets: a.buckets.map(([le, c]) => [le, c + sign * (other.get(le) ?? 0)]),
    count: a.count + sign * b.count,
    sumS: a.sumS + sign * b.sumS,
  };
}

/** Quantile q of a (delta) histogram in seconds, interpolated inside its bucket; null when empty. */
export function histogramQuantileS(h: StepHistogram, q: number): number | null {
  if (h.count <= 0) return null;
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of h.buckets) {
    if (cumulative >= rank) {
      if (!Number.isFinite(le)) return lower; // past the last finite bound: its lower edge is all one can say
      const inBucket = cumulative - below;
      return inBucket > 0 ? lower + ((le - lower) * (rank - below)) / inBucket : le;
    }
    lower = le;
    below = cumulative;
  }
  return lower;
}

export function engineStepFigures(h: StepHistogram | null): EngineStepFigures | null {
  if (!h || h.count <= 0) return null;
  return { decodeSteps: h.count, decodeStepP50Ms: (histogramQuantileS(h, 0.5) ?? Number.NaN) * 1000, decodeStepMeanMs: (h.sumS / h.count) * 1000 };
}
