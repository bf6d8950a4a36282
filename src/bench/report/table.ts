/** The terminal summary: one cli-table3 table per comparison group, values with the B/A ratio to the first run. */
import Table from 'cli-table3';
import type { RunSummary } from '../metrics/records.js';
import { TABLE_METRICS, comparisonGroups, formatRatio, rowCells } from './comparison.js';

export function summaryTables(summaries: RunSummary[], options: { color?: boolean } = {}): string {
  const paint = (code: number, text: string) => (options.color ? `\u001b[${code}m${text}\u001b[39m` : text);
  const blocks: string[] = [];
  for (const group of comparisonGroups(summaries)) {
    if (group.runs.length === 0) continue;
    const head = ['metric', ...group.runs.map((run, i) => (i === 0 ? `${run.run} (A)` : `${run.run} (/A)`))];
    const table = new Table({ head, style: { head: options.color ? ['cyan'] : [], border: options.color ? ['grey'] : [], compact: true } });
    for (const row of TABLE_METRICS) {
      const cells = rowCells(row, group.runs);
      if (cells.every((c) => c.text === 'n/a')) continue;
      table.push([
        row.label,
        ...cells.map((cell) => {
          if (cell.ratio === null) return cell.text;
          const better = row.lowerIsBetter ? cell.ratio < 0.97 : cell.ratio > 1.03;
          const worse = row.lowerIsBetter ? cell.ratio > 1.03 : cell.ratio < 0.97;
          const ratioText = formatRatio(cell.ratio);
          return `${cell.text} (${better ? paint(32, ratioText) : worse ? paint(31, ratioText) : ratioText})`;
        }),
      ]);
    }
    blocks.push(`${group.title}:\n${table.toString()}`);
  }
  return blocks.join('\n\n');
}
