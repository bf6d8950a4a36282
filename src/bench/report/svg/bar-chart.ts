/** Grouped bar chart: one group per run, one bar per series (e.g. TTFT p50/p90/p99), values printed on the bars. */
import { PALETTE, esc, formatTick, frame, legend, niceTicks, r2, svgDocument, yAxis } from './primitives.js';

export interface BarSeries {
  label: string;
  /** one value per category; null = missing */
  values: (number | null)[];
}

export function barChart(title: string, subtitle: string, categories: string[], series: BarSeries[], yTitle: string): string {
  const f = frame(Math.max(560, 120 + categories.length * (40 + series.length * 34)), 420, series.length > 1 ? 1 : 0);
  const values = series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const maxV = values.length ? Math.max(...values) : 1;
  const ticks = niceTicks(0, maxV > 0 ? maxV * 1.08 : 1);
  const top = ticks.at(-1)!;
  const toY = (v: number) => f.bottom - (v / top) * (f.bottom - f.top);
  const body = yAxis(f, ticks, toY, yTitle);
  const groupWidth = (f.right - f.left) / Math.max(1, categories.length);
  const barWidth = Math.min(46, (groupWidth * 0.78) / series.length);
  categories.forEach((category, c) => {
    const groupLeft = f.left + c * groupWidth + (groupWidth - barWidth * series.length) / 2;
    series.forEach((s, i) => {
      const value = s.values[c];
      if (value === null || !Number.isFinite(value)) return;
      const x = r2(groupLeft + i * barWidth);
      const y = r2(toY(value));
      const color = series.length === 1 ? PALETTE[c % PALETTE.length] : PALETTE[i % PALETTE.length];
      body.push(`<rect x="${x + 2}" y="${y}" width="${r2(barWidth - 4)}" height="${r2(f.bottom - y)}" rx="3" fill="${color}"><title>${esc(`${category} ${s.label}: ${value}`)}</title></rect>`);
      body.push(`<text x="${r2(x + barWidth / 2)}" y="${y - 5}" font-size="10.5" text-anchor="middle" fill="#1f2328">${esc(formatTick(value))}</text>`);
    });
    body.push(`<text x="${r2(f.left + (c + 0.5) * groupWidth)}" y="${f.bottom + 18}" font-size="12" text-anchor="middle" fill="#1f2328">${esc(category)}</text>`);
  });
  if (series.length > 1) body.push(...legend(f, series.map((s, i) => ({ label: s.label, color: PALETTE[i % PALETTE.length] })), 'box'));
  return svgDocument(f, title, subtitle, body);
}
