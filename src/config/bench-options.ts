/**
 * Option tables of `tslora bench` and `tslora synth model|adapters`. Like the serve table, these drive the
 * commander flags, --help, man/tslora-bench.1 and the README rows. Bench experiments themselves are described by
 * a JSON config (bench-configs/*.json, validated in src/bench/config); the flags here only override or steer a run.
 */
import { defineOptions } from './option-names.js';

export const BENCH_GROUPS = {
  output: 'Output',
  run: 'Run control',
  target: 'Server',
} as const;

export const SYNTH_GROUPS = {
  model: 'synth model',
  adapters: 'synth adapters',
} as const;

export const SYNTH_SHAPES = ['llama-3.1-8b', 'llama-3.2-1b', 'qwen2.5-0.5b', 'tiny'] as const;
export const SYNTH_DTYPES = ['bf16', 'f16', 'f32'] as const;

export const benchOptions = defineOptions([
  {
    key: 'out',
    type: 'string',
    valueName: 'DIR',
    group: BENCH_GROUPS.output,
    help: 'Directory for results.json, report.md and the SVG charts. Default: bench-out/<config name>.',
  },
  {
    key: 'json',
    type: 'boolean',
    defaultValue: false,
    group: BENCH_GROUPS.output,
    help: 'Print the results as JSON on stdout and plain progress lines on stderr (no dashboard).',
  },
  {
    key: 'dashboard',
    type: 'boolean',
    defaultValue: true,
    group: BENCH_GROUPS.output,
    help: 'Show the live Ink dashboard when stderr is a terminal (--no-dashboard: plain progress lines).',
  },
  {
    key: 'check',
    type: 'list',
    valueName: 'EXPR',
    group: BENCH_GROUPS.output,
    help: 'Assertion on the results, e.g. "csgmv.ttft_p50 < triton.ttft_p50 * 1.1"; repeatable. Exit 7 if one fails.',
    details:
      'Operands are RUN.METRIC (RUN is a variant name, or VARIANT@LEVEL for one level of a sweep) or numbers, ' +
      'optionally multiplied or divided by a number; comparisons are <, <=, >, >=, ==, !=. Metrics: ' +
      'ttft_*, itl_*, e2e_*, tpot_* with _mean, _p50, _p90, _p99, _max (milliseconds); output_tok_s, total_tok_s, ' +
      'req_s, errors, error_rate, requests, adapter_loads, slo_ttft.',
  },
  {
    key: 'variants',
    type: 'list',
    valueName: 'NAMES',
    group: BENCH_GROUPS.run,
    help: 'Run only these variants of the config (comma or space separated).',
  },
  {
    key: 'requests',
    type: 'int',
    valueName: 'N',
    group: BENCH_GROUPS.run,
    help: "Override the workload's measured request count (per level).",
  },
  {
    key: 'duration',
    type: 'float',
    valueName: 'SECONDS',
    group: BENCH_GROUPS.run,
    help: "Override the workload's duration limit per level, in seconds.",
  },
  {
    key: 'seed',
    type: 'int',
    valueName: 'N',
    group: BENCH_GROUPS.run,
    help: "Override the workload's random seed.",
  },
  {
    key: 'rounds',
    type: 'int',
    valueName: 'N',
    group: BENCH_GROUPS.run,
    help: "Repeat the variant sequence N times (A, B, A, B, ...) and merge the results per variant; default: the config's rounds.",
    details: 'Interleaving rounds spreads slow drifts of a shared machine over all variants instead of the last one.',
  },
  {
    key: 'dryRun',
    type: 'boolean',
    defaultValue: false,
    group: BENCH_GROUPS.run,
    help: 'Validate the config, print the planned runs and the first requests, and exit without starting servers.',
  },
  {
    key: 'list',
    type: 'boolean',
    defaultValue: false,
    env: false,
    group: BENCH_GROUPS.run,
    help: 'List the bundled experiment configs in bench-configs/ and exit.',
  },
  {
    key: 'url',
    type: 'string',
    valueName: 'URL',
    group: BENCH_GROUPS.target,
    help: 'Benchmark a running server at URL instead of launching one per variant (runs the first variant only; checks on other variants are skipped with a warning).',
  },
  {
    key: 'portBase',
    type: 'int',
    valueName: 'N',
    group: BENCH_GROUPS.target,
    help: 'Ports for the servers bench launches: N for the first, N+1 for the next, ... (default: free ports).',
  },
  {
    key: 'apiKey',
    type: 'string',
    valueName: 'KEY',
    group: BENCH_GROUPS.target,
    help: 'Bearer token for the server (also passed to the servers bench launches).',
  },
  {
    key: 'startupTimeout',
    type: 'float',
    defaultValue: 300,
    valueName: 'SECONDS',
    group: BENCH_GROUPS.target,
    help: 'How long to wait for a launched server to answer /health.',
  },
  {
    key: 'serverArgs',
    type: 'list',
    valueName: 'ARGS',
    group: BENCH_GROUPS.target,
    help: 'Extra flags appended to every launched `tslora serve` (e.g. "--num-threads 2").',
  },
]);

export const synthOptions = defineOptions([
  {
    key: 'shape',
    type: 'enum',
    choices: SYNTH_SHAPES,
    defaultValue: 'tiny',
    env: false,
    group: SYNTH_GROUPS.model,
    help: 'Architecture and sizes to copy: llama-3.1-8b, llama-3.2-1b, qwen2.5-0.5b or tiny.',
  },
  {
    key: 'out',
    type: 'string',
    valueName: 'DIR',
    env: false,
    group: SYNTH_GROUPS.model,
    help: 'Output directory (created; existing weight files in it are overwritten).',
  },
  {
    key: 'dtype',
    type: 'enum',
    choices: SYNTH_DTYPES,
    valueName: 'DTYPE',
    env: false,
    group: SYNTH_GROUPS.model,
    help: 'Weight dtype: bf16 (default for models), f16 or f32. Adapters default to the model dtype.',
  },
  {
    key: 'layers',
    type: 'int',
    valueName: 'N',
    env: false,
    group: SYNTH_GROUPS.model,
    help: 'Keep only N decoder layers (shrinks a big shape for CPU runs).',
  },
  {
    key: 'vocab',
    type: 'int',
    valueName: 'N',
    env: false,
    group: SYNTH_GROUPS.model,
    help: "Override the shape's vocabulary size (at least 260: 256 bytes plus special tokens).",
  },
  {
    key: 'synthSeed',
    flag: 'seed',
    type: 'int',
    defaultValue: 0,
    valueName: 'N',
    env: false,
    group: SYNTH_GROUPS.model,
    help: 'Seed of the random weights (same seed, same files).',
  },
  {
    key: 'model',
    type: 'string',
    valueName: 'DIR',
    env: false,
    group: SYNTH_GROUPS.adapters,
    help: 'Base model directory whose config.json gives the adapter shapes.',
  },
  {
    key: 'count',
    type: 'int',
    defaultValue: 1,
    valueName: 'N',
    env: false,
    group: SYNTH_GROUPS.adapters,
    help: 'Number of adapters to write (OUT/lora-0, OUT/lora-1, ...).',
  },
  {
    key: 'rank',
    type: 'list',
    valueName: 'R[,R...]',
    env: false,
    group: SYNTH_GROUPS.adapters,
    help: 'LoRA rank, or a list of ranks used in turn for mixed-rank sets (default 16).',
  },
  {
    key: 'alpha',
    type: 'float',
    valueName: 'ALPHA',
    env: false,
    group: SYNTH_GROUPS.adapters,
    help: 'lora_alpha (default: 2 x rank).',
  },
  {
    key: 'targets',
    type: 'list',
    valueName: 'MODULES',
    env: false,
    group: SYNTH_GROUPS.adapters,
    help: 'Target modules: names among q_proj k_proj v_proj o_proj gate_proj up_proj down_proj, or all (default: q_proj v_proj).',
  },
]);
