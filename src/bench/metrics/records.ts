/** What one measured request left behind, and the summaries computed from many of them (spec g.5). */

export interface RequestRecord {
  /** run id: variant, or variant@level in sweeps */
  run: string;
  variant: string;
  level: string | null;
  round: number;
  index: number;
  adapter: string | null;
  inputTokens: number;
  /** max_new_tokens asked for */
  requestedOutputTokens: number;
  /** tokens actually streamed back */
  outputTokens: number;
  /** when the request was sent, ms since the level started */
  sentAtMs: number;
  /** send → first streamed token, ms; null if no token arrived */
  ttftMs: number | null;
  /** send → last byte, ms */
  e2eMs: number;
  /** gaps between consecutive streamed events that carried tokens, ms (one per event after the first) */
  itlMs: number[];
  /** how many of itlMs are gaps between events that arrived in one socket read (0 ms: below what the client can time);
   * absent in results written before it was recorded */
  itlSameRead?: number;
  /** null = success */
  error: string | null;
}

export interface LatencyStats {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface LoraCounters {
  /** adapter loads counted by /metrics during the measured window (device slot fills), null if not exported */
  adapterLoads: number | null;
  evictions: number | null;
  /** device slots in use at the end / total */
  slotsUsed: number | null;
  slotsTotal: number | null;
  /** every lora-related counter delta, by metric name (with labels) */
  deltas: Record<string, number>;
}

/** The server's own decode-only forward steps during the measured window (its /metrics histogram; null if absent). */
export interface EngineStepFigures {
  decodeSteps: number;
  decodeStepP50Ms: number;
  decodeStepMeanMs: number;
}

export interface RunSummary {
  run: string;
  variant: string;
  level: string | null;
  requests: number;
  completed: number;
  errors: number;
  errorRate: number;
  /** measured window: first send → last completion, seconds */
  durationS: number;
  reqPerS: number;
  outputTokPerS: number;
  totalTokPerS: number;
  outputTokens: number;
  ttft: LatencyStats;
  itl: LatencyStats;
  e2e: LatencyStats;
  tpot: LatencyStats;
  /** share of the ITL gaps between events that arrived in one socket read: the server delivered those tokens in a
   * burst, and their gap is below what the client can time (null without gaps) */
  itlSameReadShare: number | null;
  /** fraction of requests (errors count as misses) with TTFT under the workload's sloTtftMs */
  sloTtftAttainment: number;
  /** max / min over adapters of the per-adapter P99 TTFT (1 = fair), null with fewer than two adapters */
  adapterTtftP99Spread: number | null;
  lora: LoraCounters;
  /** null for servers that do not export tslora_engine_step_seconds, and for variant aggregates over levels */
  engineStep: EngineStepFigures | null;
}
