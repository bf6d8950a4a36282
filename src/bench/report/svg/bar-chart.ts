/**
 * Grouped bar chart: one group per category (run), one bar per series (e.g. TTFT p50/p90/p99), values printed
 * on the bars. With `categoryColors`, a bar takes its category's colour (variants) and series are told apart by
 * shade; otherwise series take the palette.
 */
import { PALETTE, esc, fitText, formatTick, frame, legend, legendRowCount, niceTicks, r2, svgDocument, yAxis } from './primitives.js';

export interface BarSeries {
  label: string;
  /** one value per category; null = missing */
  values: (number | null)[];
}

const SHADES = [1, 0.62, 0.34];

export function barChart(
  title: string,
  subtitle: string,
  categories: string[],
  series: BarSeries[],
  yTitle: string,
  options: { categoryColors?: string[]; colorLegend?: { label: string; color: string }[] } = {},
): string {
  const byCategory = options.categoryColors !== undefined;
  const legendEntries = [
    ...(series.length > 1 ? series.map((s, i) => (byCategory ? { label: s.label, color: '#57606a', opacity: SHADES[i % SHADES.length] } : { label: s.label, color: PALETTE[i % PALETTE.length] })) : []),
    ...(options.colorLegend ?? []),
  ];
  const width = Math.max(600, 120 + categories.length * (36 + series.length * 30));
  const legendRows = legendRowCount(width, legendEntries.map((e) => e.label));
  const f = frame(width, 410 + legendRows * 20, legendRows);
  const values = series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const maxV = values.length ? Math.max(...values) : 1;
  const ticks = niceTicks(0, maxV > 0 ? maxV * 1.08 : 1);
  const top = ticks.at(-1)!;
  const toY = (v: number) => f.bottom - (v / top) * (f.bottom - f.top);
  const body = yAxis(f, ticks, toY, yTitle);
  const groupWidth = (f.right - f.left) / Math.max(1, categories.length);
  const barWidth = Math.min(46, (groupWidth * 0.8) / series.length);
  categories.forEach((category, c) => {
    const groupLeft = f.left + c * groupWidth + (groupWidth - barWidth * series.length) / 2;
    series.forEach((s, i) => {
      const value = s.values[c];
      if (value === null || !Number.isFinite(value)) return;
      const x = r2(groupLeft + i * barWidth);
      const y = r2(toY(value));
      const color = byCategory ? options.categoryColors![c] : series.length === 1 ? PALETTE[c % PALETTE.length] : PALETTE[i % PALETTE.length];
      const opacity = byCategory && series.length > 1 ? ` fill-opacity="${SHADES[i % SHADES.length]}"` : '';
      body.push(`<rect x="${x + 1.5}" y="${y}" width="${r2(barWidth - 3)}" height="${r2(f.bottom - y)}" rx="3" fill="${color}"${opacity}><title>${esc(`${category} ${s.label}: ${value}`)}</title></rect>`);
      body.push(`<text x="${r2(x + barWidth / 2)}" y="${y - 5}" font-size="${barWidth < 34 ? 9 : 10.5}" text-anchor="middle" fill="#1f2328">${esc(formatTick(value))}</text>`);
    });
    body.push(`<text x="${r2(f.left + (c + 0.5) * groupWidth)}" y="${f.bottom + 18}" font-size="12" text-anchor="middle" fill="#1f2328">${esc(fitText(category, groupWidth - 4, 7))}</text>`);
  });
  if (legendEntries.length) body.push(...legend(f, legendEntries, 'box'));
  return svgDocument(f, title, subtitle, body);
}
