/** Latency CDF chart: one step line per run; log x axis when the latencies span more than ~30×. */
import { PALETTE, esc, frame, legend, legendRowCount, logTicks, niceTicks, r2, svgDocument, yAxis, formatTick } from './primitives.js';

export interface CdfSeries {
  label: string;
  samplesMs: number[];
  /** default: the palette in order */
  color?: string;
  /** SVG stroke-dasharray, e.g. to tell sweep levels apart */
  dash?: string;
}

export function cdfChart(title: string, subtitle: string, series: CdfSeries[], xTitle = 'latency (ms)'): string {
  const nonEmpty = series.filter((s) => s.samplesMs.length > 0);
  const legendRows = legendRowCount(760, nonEmpty.map((s) => s.label));
  const f = frame(760, 420 + legendRows * 20, legendRows);
  const all = nonEmpty.flatMap((s) => s.samplesMs).filter((v) => Number.isFinite(v) && v > 0);
  if (all.length === 0) return svgDocument(f, title, 'no samples', []);
  const minV = Math.min(...all);
  const maxV = Math.max(...all);
  const useLog = maxV / Math.max(minV, 1e-6) > 30;
  const lo = useLog ? Math.pow(10, Math.floor(Math.log10(minV))) : 0;
  const hi = useLog ? Math.pow(10, Math.ceil(Math.log10(maxV))) : niceTicks(0, maxV * 1.02).at(-1)!;
  const toX = (v: number) =>
    useLog
      ? f.left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (f.right - f.left)
      : f.left + ((v - lo) / (hi - lo)) * (f.right - f.left);
  const toY = (p: number) => f.bottom - p * (f.bottom - f.top);

  const body: string[] = yAxis(f, [0, 0.25, 0.5, 0.75, 0.9, 1], toY, 'fraction of requests ≤ x', (v) => `${Math.round(v * 100)}%`);
  const xTicks = useLog ? logTicks(lo, hi) : niceTicks(lo, hi);
  for (const t of xTicks) {
    const x = r2(toX(t));
    body.push(`<line x1="${x}" x2="${x}" y1="${f.top}" y2="${f.bottom}" stroke="#f0f1f3"/>`);
    body.push(`<text x="${x}" y="${f.bottom + 16}" font-size="11" text-anchor="middle" fill="#57606a">${esc(formatTick(t))}</text>`);
  }
  body.push(`<text x="${(f.left + f.right) / 2}" y="${f.bottom + 34}" font-size="12" text-anchor="middle" fill="#57606a">${esc(xTitle)}${useLog ? ' (log scale)' : ''}</text>`);

  nonEmpty.forEach((s, i) => {
    const sorted = s.samplesMs.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
    // step function, thinned to ≤ 400 points
    const stride = Math.max(1, Math.floor(sorted.length / 400));
    let d = `M${r2(toX(sorted[0]))},${r2(toY(0))}`;
    for (let k = 0; k < sorted.length; k += stride) {
      const x = r2(toX(sorted[k]));
      d += `L${x},${r2(toY(k / sorted.length))}L${x},${r2(toY((k + 1) / sorted.length))}`;
    }
    d += `L${r2(toX(sorted.at(-1)!))},${r2(toY(1))}`;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    body.push(`<path d="${d}" fill="none" stroke="${s.color ?? PALETTE[i % PALETTE.length]}" stroke-width="2.2" stroke-linejoin="round"${dash}/>`);
  });
  body.push(...legend(f, nonEmpty.map((s, i) => ({ label: s.label, color: s.color ?? PALETTE[i % PALETTE.length], dash: s.dash }))));
  return svgDocument(f, title, subtitle, body);
}
