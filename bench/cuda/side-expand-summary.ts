/**
 * Summary of the side-expand A/B (scripts/device/sidex-round.sh; not a test): bench/cuda/decode.ts JSON files of
 * processes run alternately with TSLORA_CUDA_LORA_SIDE_EXPAND=0 and =1 (labels "off-N" / "on-N"), one GPU, one call.
 * Per (backend, batch, scenario): the median step over the processes of each side with its range, the ratio on/off,
 * and the LoRA cost over the same side's base step (ms per step, per row, and in percent).
 *   node --import tsx bench/cuda/side-expand-summary.ts FILE.json … [--markdown]
 */
import { readFileSync } from 'node:fs';

interface Row { loraBackend: string; batch?: number; scenario?: string; stepMs: number; graphMaxBs: number }
interface Report { gpu: string; label: string; results: Row[] }

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const markdown = process.argv.includes('--markdown');
const reports = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Report);
if (reports.length === 0) throw new Error('usage: side-expand-summary.ts FILE.json …');
const side = (r: Report) => (r.label.startsWith('on') ? 'on' : 'off');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
// steps[side][key] = step times of that configuration, one per process
const steps: Record<string, Map<string, number[]>> = { off: new Map(), on: new Map() };
const keys: string[] = [];
for (const r of reports)
  for (const row of r.results) {
    if (row.batch === undefined || row.scenario === undefined) continue;  // prefill rows
    const key = `${row.loraBackend} graphs ${row.graphMaxBs > 0 ? 'on' : 'off'} batch ${row.batch} ${row.scenario}`;
    if (!keys.includes(key)) keys.push(key);
    const m = steps[side(r)];
    m.set(key, [...(m.get(key) ?? []), row.stepMs]);
  }
const stat = (s: string, key: string) => {
  const xs = steps[s].get(key) ?? [];
  return xs.length ? { med: median(xs), lo: Math.min(...xs), hi: Math.max(...xs), n: xs.length } : null;
};
const lines: string[] = [];
lines.push(`GPU: ${[...new Set(reports.map((r) => r.gpu))].join(', ')}; processes: off ${reports.filter((r) => side(r) === 'off').length}, on ${reports.filter((r) => side(r) === 'on').length} (alternated)`);
const head = ['configuration', 'off ms (range)', 'on ms (range)', 'on/off', 'LoRA cost off: ms/step, µs/row, %', 'LoRA cost on: ms/step, µs/row, %'];
const fmt = (v: { med: number; lo: number; hi: number } | null) => (v ? `${v.med.toFixed(3)} (${v.lo.toFixed(3)}-${v.hi.toFixed(3)})` : 'n/a');
const rows: string[][] = [];
for (const key of keys) {
  const off = stat('off', key), on = stat('on', key);
  const batch = Number(/batch (\d+)/.exec(key)![1]);
  const baseKey = key.replace(/ (shared|distinct)$/, ' base');
  const cost = (s: string, v: { med: number } | null) => {
    const base = stat(s, baseKey);
    if (!v || !base || baseKey === key) return '';
    const ms = v.med - base.med;
    return `${ms.toFixed(3)}, ${((1000 * ms) / batch).toFixed(1)}, ${((100 * ms) / base.med).toFixed(1)} %`;
  };
  rows.push([key, fmt(off), fmt(on), off && on ? (on.med / off.med).toFixed(3) : 'n/a', cost('off', off), cost('on', on)]);
}
if (markdown) {
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`));
} else {
  lines.push(head.join(' | '), ...rows.map((r) => r.join(' | ')));
}
console.log(lines.join('\n'));
