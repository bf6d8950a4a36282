/**
 * What an Nsight Compute report of a device round says, in one table per kernel (session 25; bench/lora/device-run.sh
 * LORA_NCU / LORA_NCU_PREFILL write the CSVs): `ncu --csv --page details` (section metrics and the rules' advice) or
 * `--page raw` (every collected metric, one column each: the per-reason warp stall ratios among them).
 *   node --import tsx bench/cuda/ncu-summary.ts lora/ncu-prefill-shrink-qkv-details.csv lora/ncu-prefill-shrink-qkv-raw.csv[.gz] …
 * Lines before ncu's header row (the profiled program's own output, ==PROF== lines) are skipped.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

// One line of ncu's CSV: every field quoted, a quote inside a field doubled.
export function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] !== '"') {  // an unquoted field (ncu quotes all, but be lenient)
      const end = line.indexOf(',', i);
      fields.push(line.slice(i, end < 0 ? line.length : end));
      i = end < 0 ? line.length : end + 1;
      continue;
    }
    let value = '';
    i += 1;
    for (;;) {
      const q = line.indexOf('"', i);
      if (q < 0) { value += line.slice(i); i = line.length; break; }
      value += line.slice(i, q);
      if (line[q + 1] === '"') { value += '"'; i = q + 2; continue; }
      i = q + 1;
      break;
    }
    fields.push(value);
    if (line[i] === ',') i += 1;
  }
  return fields;
}

export interface KernelReport {
  kernel: string;
  grid: string;
  block: string;
  metrics: { section: string; name: string; unit: string; value: string }[];
  rules: { section: string; rule: string; description: string; speedup: string }[];
  stalls: { reason: string; cyclesPerIssue: number }[];  // raw page: warp cycles stalled per issued instruction, by reason
  pipes: { name: string; pct: number }[];  // raw page: pipe utilisation, % of peak
}

const STALL = /^smsp__average_warps?_(?:issue_)?stalled_(\w+?)_per_issue_active\.ratio$/;
const PIPE = /^sm__(?:inst_executed_)?pipe_(\w+?)(?:_cycles_active)?\.avg\.pct_of_peak_sustained_active$/;

export function parseNcuCsv(text: string): KernelReport[] {
  const lines = text.split(/\r?\n/);
  const at = lines.findIndex((l) => l.startsWith('"ID","Process ID"'));
  if (at < 0) return [];
  const header = parseCsvLine(lines[at]);
  const col = (name: string) => header.indexOf(name);
  const reports = new Map<string, KernelReport>();
  const reportOf = (row: string[]) => {
    const id = row[col('ID')];
    let r = reports.get(id);
    if (!r) {
      r = { kernel: row[col('Kernel Name')], grid: row[col('Grid Size')], block: row[col('Block Size')], metrics: [], rules: [], stalls: [], pipes: [] };
      reports.set(id, r);
    }
    return r;
  };
  if (col('Section Name') >= 0) {  // details page: one metric or one rule per line
    for (const line of lines.slice(at + 1)) {
      if (!line.startsWith('"')) continue;
      const row = parseCsvLine(line);
      const r = reportOf(row);
      const section = row[col('Section Name')];
      if (row[col('Metric Name')]) r.metrics.push({ section, name: row[col('Metric Name')], unit: row[col('Metric Unit')], value: row[col('Metric Value')] });
      else if (col('Rule Name') >= 0 && row[col('Rule Description')])
        r.rules.push({ section, rule: row[col('Rule Name')], description: row[col('Rule Description')], speedup: row[col('Estimated Speedup')] ?? '' });
    }
    return [...reports.values()];
  }
  // raw page: the header names the metrics, the next line their units, then one line per kernel
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('"')) continue;
    const row = parseCsvLine(line);
    const r = reportOf(row);
    header.forEach((name, i) => {
      const value = Number(String(row[i] ?? '').replace(/,/g, ''));
      const stall = STALL.exec(name), pipe = PIPE.exec(name);
      if (stall && Number.isFinite(value)) r.stalls.push({ reason: stall[1], cyclesPerIssue: value });
      if (pipe && Number.isFinite(value)) r.pipes.push({ name: pipe[1], pct: value });
      if (/^(gpu__time_duration\.sum|launch__registers_per_thread|sm__warps_active\.avg\.pct_of_peak_sustained_active|smsp__average_warp_latency_per_inst_issued\.ratio)$/.test(name))
        r.metrics.push({ section: 'raw', name, unit: '', value: String(row[i]) });
    });
    r.stalls.sort((a, b) => b.cyclesPerIssue - a.cyclesPerIssue);
    r.pipes.sort((a, b) => b.pct - a.pct);
  }
  return [...reports.values()];
}

// The details-page metrics worth a line each (section, metric), in this order where present.
export const KEY_METRICS: [string, string][] = [
  ['GPU Speed Of Light Throughput', 'Duration'], ['GPU Speed Of Light Throughput', 'Compute (SM) Throughput'],
  ['GPU Speed Of Light Throughput', 'Memory Throughput'], ['GPU Speed Of Light Throughput', 'DRAM Throughput'],
  ['GPU Speed Of Light Throughput', 'L2 Cache Throughput'], ['GPU Speed Of Light Throughput', 'L1/TEX Cache Throughput'],
  ['Compute Workload Analysis', 'Issue Slots Busy'], ['Memory Workload Analysis', 'L2 Hit Rate'],
  ['Memory Workload Analysis', 'Mem Pipes Busy'], ['Scheduler Statistics', 'No Eligible'],
  ['Scheduler Statistics', 'Eligible Warps Per Scheduler'], ['Warp State Statistics', 'Warp Cycles Per Issued Instruction'],
  ['Occupancy', 'Achieved Occupancy'], ['Launch Statistics', 'Registers Per Thread'], ['Launch Statistics', 'Waves Per SM'],
];

export function ncuMarkdown(file: string, reports: KernelReport[], topStalls = 8): string {
  const out: string[] = [];
  for (const r of reports) {
    out.push(`### ${file}: ${r.kernel.replace(/\([^()]*\)$/, '').slice(0, 120)} (grid ${r.grid}, block ${r.block})`, '');
    const keyed = KEY_METRICS.map(([s, n]) => r.metrics.find((m) => m.section === s && m.name === n)).filter((m) => m !== undefined);
    for (const m of [...keyed, ...r.metrics.filter((m) => m.section === 'raw')]) out.push(`- ${m!.name}: ${m!.value}${m!.unit ? ` ${m!.unit}` : ''}`);
    if (r.stalls.length) out.push(`- stalls (cycles per issued instruction): ${r.stalls.slice(0, topStalls).map((s) => `${s.reason} ${s.cyclesPerIssue.toFixed(2)}`).join(', ')}`);
    if (r.pipes.length) out.push(`- pipes (% of peak, active): ${r.pipes.slice(0, 6).map((p) => `${p.name} ${p.pct.toFixed(1)}`).join(', ')}`);
    for (const rule of r.rules.filter((x) => x.speedup).sort((a, b) => Number(b.speedup) - Number(a.speedup)).slice(0, 6))
      out.push(`- rule ${rule.rule} (est. speedup ${rule.speedup} %): ${rule.description.replace(/\s+/g, ' ').slice(0, 400)}`);
    out.push('');
  }
  return out.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const file of process.argv.slice(2)) {
    const bytes = readFileSync(file);
    const text = file.endsWith('.gz') ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8');
    process.stdout.write(ncuMarkdown(file, parseNcuCsv(text)) + '\n');
  }
}
