/** report.md: what was run, where, the comparison tables with B/A ratios, the checks, and the charts. */
import type { RunSummary } from '../metrics/records.js';
import { describeHardware } from '../runner/environment.js';
import { TABLE_METRICS, comparisonGroups, formatRatio, itlResolutionNote, rowCells } from './comparison.js';
import type { BenchResults } from './results.js';

function markdownTable(runs: RunSummary[]): string {
  const header = `| metric | ${runs.map((r, i) => (i === 0 ? `${r.run} (A)` : `${r.run} | ${r.run}/A`)).join(' | ')} |`;
  const align = `|---|${runs.map((_r, i) => (i === 0 ? '---:' : '---:|---:')).join('|')}|`;
  const rows = TABLE_METRICS.map((row) => {
    const cells = rowCells(row, runs);
    if (cells.every((c) => c.text === 'n/a')) return null;
    return `| ${row.label} | ${cells.map((c, i) => (i === 0 ? c.text : `${c.text} | ${formatRatio(c.ratio) || '–'}`)).join(' | ')} |`;
  }).filter((r): r is string => r !== null);
  return [header, align, ...rows].join('\n');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : NaN;
}

/** With several rounds: the medians of each round, to show how much of an A/B gap is round-to-round noise. */
function perRoundTable(results: BenchResults): string[] {
  if (results.config.rounds <= 1) return [];
  const variants = [...new Set(results.records.map((r) => r.variant))];
  const keys = [...new Set(results.records.map((r) => `${r.level ?? ''}\u0000${r.round}`))];
  const lines = [
    '### Per round (medians, ms)',
    '',
    `| level | round | ${variants.map((v) => `${v} TTFT | ${v} E2E`).join(' | ')} |`,
    `|---|---:|${variants.map(() => '---:|---:').join('|')}|`,
  ];
  for (const key of keys) {
    const [level, round] = key.split('\u0000');
    const cells = variants.map((variant) => {
      const ok = results.records.filter((r) => r.error === null && r.variant === variant && (r.level ?? '') === level && String(r.round) === round);
      return ok.length ? `${median(ok.map((r) => r.ttftMs ?? NaN)).toFixed(0)} | ${median(ok.map((r) => r.e2eMs)).toFixed(0)}` : '– | –';
    });
    lines.push(`| ${level || 'all'} | ${Number(round) + 1} | ${cells.join(' | ')} |`);
  }
  lines.push('');
  return lines;
}

export function markdownReport(results: BenchResults, charts: { file: string; caption: string }[]): string {
  const env = results.environment;
  const lines: string[] = [];
  lines.push(`# tslora bench: ${results.name}`, '');
  if (results.partial) lines.push(`> **Partial results**: the run was interrupted (${results.partial.reason}); only the requests that finished before are counted, and runs that never started are missing.`, '');
  if (results.description) lines.push(results.description, '');
  lines.push('## Setup', '');
  lines.push(`- **Hardware**: ${describeHardware(env)}`);
  lines.push(`- **Software**: Node ${env.node}, tslora ${env.tslora}, commit ${env.gitCommit ?? 'unknown'}${env.gitDirty ? ' (with local changes)' : ''}, ${env.os}`);
  if (env.loadAverage) {
    const busy = Math.max(env.loadAverage.start, env.loadAverage.end ?? 0) > env.cpuCores;
    lines.push(`- **Machine load** (1-min load average): ${env.loadAverage.start} at the start, ${env.loadAverage.end ?? '?'} at the end, on ${env.cpuCores} cores${busy ? ' — the machine was shared, so absolute figures are inflated and noisy; compare ratios' : ''}`);
  }
  lines.push(`- **Model**: ${results.model.description}`);
  const adapters = results.model.adapters;
  lines.push(`- **Adapters**: ${adapters.length === 0 ? 'none' : `${adapters.length} (${adapters.slice(0, 6).map((a) => `${a.name}${a.rank ? ` r${a.rank}` : ''}`).join(', ')}${adapters.length > 6 ? ', …' : ''})`}`);
  lines.push(`- **Workload**: \`${JSON.stringify(results.config.workload)}\``);
  if (results.config.levels?.length) {
    lines.push(`- **Levels**: ${results.config.levels.map((l) => `\`${l.name}\` ${JSON.stringify(l.workload)}`).join('; ')}`);
  }
  lines.push(`- **Run**: ${results.startedAt} → ${results.finishedAt}, ${results.config.rounds} round(s); warm-up requests excluded`, '');
  lines.push('### Servers', '');
  for (const launch of results.launches) lines.push(`- \`${launch.variant}\`${results.config.rounds > 1 ? ` (round ${launch.round + 1})` : ''}: \`${launch.argv.join(' ')}\``);
  lines.push('');
  lines.push('## Results', '');
  lines.push('Latencies in ms (TTFT: send → first streamed token; ITL: gaps between streamed tokens; E2E: send → last byte; TPOT: (E2E − TTFT)/(tokens − 1)). Ratios are each run over the first run of its table (B/A); below 1 is faster for latencies.', '');
  for (const group of comparisonGroups(results.summaries)) {
    lines.push(`### ${group.title}`, '', markdownTable(group.runs), '');
  }
  const notes = results.summaries.map(itlResolutionNote).filter((n): n is string => n !== null);
  if (notes.length) lines.push('**ITL resolution.** ITL is timed per SSE event on arrival; events completed by the same socket read cannot be told apart.', '', ...notes.map((n) => `- ${n}`), '');
  lines.push(...perRoundTable(results));
  if (results.checks.length) {
    lines.push('## Checks', '');
    for (const check of results.checks) lines.push(`- ${check.passed ? '✅' : '❌'} \`${check.message}\``);
    lines.push('');
  }
  const errors = results.records.filter((r) => r.error !== null);
  if (errors.length) {
    lines.push('## Errors', '');
    const byMessage = new Map<string, number>();
    for (const r of errors) byMessage.set(`${r.run}: ${r.error}`, (byMessage.get(`${r.run}: ${r.error}`) ?? 0) + 1);
    for (const [message, count] of [...byMessage].slice(0, 20)) lines.push(`- ${count} × ${message}`);
    lines.push('');
  }
  if (charts.length) {
    lines.push('## Charts', '');
    for (const chart of charts) lines.push(`![${chart.caption}](${chart.file})`, '');
  }
  lines.push('Bench figures are measurements, not tests: compare runs made side by side in one session and on one machine.', '');
  return lines.join('\n');
}
