/**
 * What the wide prefill shrink's sweep says (lora_cuda_bench with LORA_BENCH_WIDE_SWEEP=1, session 22): per module of
 * the prefill case, the fastest (tile, split-K form, splits) of the shrink alone against the default kernels' shrink
 * (strategy "triton") of the same run, and the three modules' sum (what the layer row could lose).
 *   node --import tsx bench/cuda/wide-sweep.ts lora/bench.json [--case 'prefill 8x512 r64']
 * Prints a markdown table; decides nothing by itself (the flip also needs the GPU checks: bench/cuda/README.md).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface SweepEntry { case: string; strategy: string; module: string; wideTile?: string; cluster?: boolean; sweepSplits?: number; shrinkUs?: number }
export interface SweepRow {
  module: string;
  defaultUs: number | null;  // strategy "triton"'s shrink of this module (the engine's default kernels)
  best: { tile: string; cluster: boolean; splits: number; us: number } | null;
  bestPerTile: Record<string, { cluster: boolean; splits: number; us: number }>;
}
export const LAYER_MODULES = ['qkv', 'gate_up', 'down'];

export function summarizeWideSweep(results: SweepEntry[], caseName = 'prefill 8x512 r64'): SweepRow[] {
  const modules = [...new Set(results.filter((r) => r.case === caseName && r.sweepSplits !== undefined && r.wideTile).map((r) => r.module))];
  return modules.map((module) => {
    const entries = results.filter((r) => r.case === caseName && r.module === module && r.wideTile && typeof r.shrinkUs === 'number' &&
      typeof r.sweepSplits === 'number');
    const bestPerTile: SweepRow['bestPerTile'] = {};
    for (const e of entries) {
      const label = `${e.wideTile}${e.cluster ? ' cluster' : ''}`;
      if (!bestPerTile[label] || e.shrinkUs! < bestPerTile[label].us) bestPerTile[label] = { cluster: Boolean(e.cluster), splits: e.sweepSplits!, us: e.shrinkUs! };
    }
    const best = entries.reduce<SweepEntry | null>((a, e) => (a === null || e.shrinkUs! < a.shrinkUs! ? e : a), null);
    const base = results.find((r) => r.case === caseName && r.module === module && r.strategy === 'triton' && r.sweepSplits === undefined &&
      typeof r.shrinkUs === 'number');
    return {
      module,
      defaultUs: base?.shrinkUs ?? null,
      best: best ? { tile: best.wideTile!, cluster: Boolean(best.cluster), splits: best.sweepSplits!, us: best.shrinkUs! } : null,
      bestPerTile,
    };
  });
}

const us = (v: number | null | undefined) => (typeof v === 'number' ? v.toFixed(1) : '–');

export function wideSweepMarkdown(rows: SweepRow[]): string {
  const labels = [...new Set(rows.flatMap((r) => Object.keys(r.bestPerTile)))].sort();
  const lines = [
    `| module | default shrink (triton), µs | best wide (tile, form, splits), µs | best / default | ${labels.map((l) => `${l} (splits)`).join(' | ')} |`,
    `|---|---|---|---|${labels.map(() => '---|').join('')}`,
  ];
  for (const r of rows) {
    const ratio = r.best && r.defaultUs ? (r.best.us / r.defaultUs).toFixed(3) : '–';
    const best = r.best ? `${us(r.best.us)} (${r.best.tile}${r.best.cluster ? ' cluster' : ''}, ${r.best.splits})` : '–';
    const cells = labels.map((l) => (r.bestPerTile[l] ? `${us(r.bestPerTile[l].us)} (${r.bestPerTile[l].splits})` : '–'));
    lines.push(`| ${r.module} | ${us(r.defaultUs)} | ${best} | ${ratio} | ${cells.join(' | ')} |`);
  }
  const layer = rows.filter((r) => LAYER_MODULES.includes(r.module));
  if (layer.length === LAYER_MODULES.length && layer.every((r) => r.best && r.defaultUs !== null)) {
    const before = layer.reduce((s, r) => s + r.defaultUs!, 0), after = layer.reduce((s, r) => s + r.best!.us, 0);
    lines.push('', `qkv + gate_up + down shrinks: ${us(before)} → ${us(after)} µs (${us(after - before)} µs per layer, each module at its best)`);
  }
  return lines.join('\n');
}

function main() {
  const { values: a, positionals } = parseArgs({ allowPositionals: true, options: { case: { type: 'string', default: 'prefill 8x512 r64' } } });
  if (positionals.length !== 1) throw new Error('usage: wide-sweep.ts lora/bench.json [--case NAME]');
  const report = JSON.parse(readFileSync(positionals[0], 'utf8')) as { device?: string; results: SweepEntry[] };
  const rows = summarizeWideSweep(report.results, a.case);
  if (rows.length === 0) throw new Error(`no wide-shrink sweep rows for '${a.case}' in ${positionals[0]} (run lora_cuda_bench with LORA_BENCH_WIDE_SWEEP=1)`);
  console.log(`${report.device ?? 'unknown GPU'}, ${a.case}\n\n${wideSweepMarkdown(rows)}`);
}

if (process.argv[1]?.endsWith('wide-sweep.ts')) main();
