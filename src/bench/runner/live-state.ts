/**
 * The live view of the run in progress, written by the load generator and read (polled) by the reporters:
 * counts, in-flight requests, rolling TTFT/ITL windows, streamed tokens, adapter slot occupancy.
 */
export type RunPhase = 'starting' | 'warmup' | 'running' | 'done' | 'failed';

export interface LiveRunState {
  run: string;
  variant: string;
  level: string | null;
  /** 0-based round and the number of rounds (--rounds); figures of later rounds include the earlier ones */
  round: number;
  rounds: number;
  phase: RunPhase;
  /** measured requests planned for this level */
  total: number;
  sent: number;
  done: number;
  errors: number;
  inFlight: number;
  /** performance.now() when the measured phase started (0 before) */
  startedAt: number;
  outputTokens: number;
  /** most recent samples, newest last */
  recentTtftMs: number[];
  recentItlMs: number[];
  slotsUsed: number | null;
  slotsTotal: number | null;
  message: string;
}

export const TTFT_WINDOW = 200;
export const ITL_WINDOW = 2000;

export function newLiveState(run: string, variant: string, level: string | null, total: number): LiveRunState {
  return {
    run, variant, level, round: 0, rounds: 1, phase: 'starting', total, sent: 0, done: 0, errors: 0, inFlight: 0, startedAt: 0,
    outputTokens: 0, recentTtftMs: [], recentItlMs: [], slotsUsed: null, slotsTotal: null, message: '',
  };
}

/** "csgmv@c4" or, with several rounds, "csgmv@c4 · round 2/3". */
export function runLabel(live: Pick<LiveRunState, 'run' | 'round' | 'rounds'>): string {
  return live.rounds > 1 ? `${live.run} · round ${live.round + 1}/${live.rounds}` : live.run;
}

export function pushWindow(window: number[], value: number, size: number): void {
  window.push(value);
  if (window.length > size) window.splice(0, window.length - size);
}

/** Nearest-rank percentile of a small window (the dashboard's rolling figures; final figures use hdr). */
export function windowPercentile(samples: readonly number[], percentile: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((percentile / 100) * sorted.length) - 1));
  return sorted[rank];
}
