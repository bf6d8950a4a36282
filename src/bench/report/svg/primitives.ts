/** Small SVG building blocks shared by the charts: escaping, nice axis ticks, palette, frame with title. */

export const PALETTE = ['#4C78A8', '#F58518', '#54A24B', '#E45756', '#72B7B2', '#B279A2', '#EECA3B', '#9D755D', '#FF9DA6', '#BAB0AC'];
export const FONT = "font-family=\"-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif\"";

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Cuts text to what fits in `widthPx` at about `charPx` per character, with an ellipsis. */
export function fitText(text: string, widthPx: number, charPx: number): string {
  const max = Math.max(4, Math.floor(widthPx / charPx));
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** Dash patterns that tell levels apart when colour tells variants apart. */
export const DASHES = ['', '7 4', '2 3', '10 3 2 3', '4 2'];

/** Round to 2 decimals for compact path data. */
export const r2 = (v: number) => Math.round(v * 100) / 100;

/** "Nice" linear ticks (1, 2, 2.5, 5 × 10^k steps) covering [min, max]: the last tick is ≥ max. */
export function niceTicks(min: number, max: number, approxCount = 5): number[] {
  if (!(max > min)) return [min];
  const rawStep = (max - min) / approxCount;
  const magnitude = Math.pow(10, Math.floor(Math.log10(rawStep)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rawStep) ?? 10 * magnitude;
  const ticks: number[] = [];
  // from the first tick at or below min to the first at or above max, so the axis covers the data
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

/** Decade ticks (1, 2, 5 × 10^k) for a log axis over [min, max]. */
export function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * Math.pow(10, e);
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

export function formatTick(v: number): string {
  if (v === 0) return '0';
  const abs = Math.abs(v);
  if (abs >= 10_000) return `${Math.round(v / 100) / 10}k`;
  if (abs >= 100) return String(Math.round(v));
  if (abs >= 1) return String(r2(v));
  return v.toPrecision(2);
}

export interface Frame {
  width: number;
  height: number;
  /** plot area */
  left: number;
  top: number;
  right: number;
  bottom: number;
}

export function frame(width: number, height: number, legendRows = 0): Frame {
  return { width, height, left: 72, top: 60, right: width - 28, bottom: height - (legendRows > 0 ? 76 : 50) - Math.max(0, legendRows - 1) * 20 };
}

export function svgDocument(f: Frame, title: string, subtitle: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" ${FONT}>`,
    `<rect width="${f.width}" height="${f.height}" fill="#ffffff"/>`,
    `<text x="${f.left}" y="26" font-size="17" font-weight="600" fill="#1f2328">${esc(title)}</text>`,
    subtitle ? `<text x="${f.left}" y="44" font-size="12" fill="#656d76">${esc(fitText(subtitle, f.width - f.left - 12, 6.4))}</text>` : '',
    ...body,
    '</svg>',
    '',
  ].filter(Boolean).join('\n');
}

/** Horizontal grid lines with y labels, and the axis titles. */
export function yAxis(f: Frame, ticks: number[], toY: (v: number) => number, title: string, format = formatTick): string[] {
  const out = ticks.map((t) => {
    const y = r2(toY(t));
    return `<line x1="${f.left}" x2="${f.right}" y1="${y}" y2="${y}" stroke="#e6e8eb"/>` +
      `<text x="${f.left - 8}" y="${y + 4}" font-size="11" text-anchor="end" fill="#57606a">${esc(format(t))}</text>`;
  });
  const midY = (f.top + f.bottom) / 2;
  out.push(`<text transform="translate(18 ${midY}) rotate(-90)" font-size="12" text-anchor="middle" fill="#57606a">${esc(title)}</text>`);
  out.push(`<line x1="${f.left}" x2="${f.right}" y1="${f.bottom}" y2="${f.bottom}" stroke="#8c959f"/>`);
  return out;
}

const legendEntryWidth = (label: string) => 50 + label.length * 7.5;

/** How many rows `legend` needs for these labels in a chart `width` wide (same layout rule). */
export function legendRowCount(width: number, labels: string[]): number {
  if (labels.length === 0) return 0;
  const left = 72;
  const right = width - 28;
  let rows = 1;
  let x = left;
  for (const label of labels) {
    const w = legendEntryWidth(label);
    if (x + w > right && x > left) {
      rows++;
      x = left;
    }
    x += w;
  }
  return rows;
}

/** Legend entries laid out in rows under the plot. */
export function legend(f: Frame, entries: { label: string; color: string; dash?: string; opacity?: number }[], kind: 'line' | 'box' = 'line'): string[] {
  const out: string[] = [];
  let x = f.left;
  let y = f.bottom + 62;
  for (const entry of entries) {
    const width = legendEntryWidth(entry.label);
    if (x + width > f.right && x > f.left) {
      x = f.left;
      y += 20;
    }
    out.push(
      kind === 'line'
        ? `<line x1="${x}" x2="${x + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${entry.color}" stroke-width="2.6"${entry.dash ? ` stroke-dasharray="${entry.dash}"` : ' stroke-linecap="round"'}/>`
        : `<rect x="${x + 4}" y="${y - 10}" width="11" height="11" rx="2" fill="${entry.color}"${entry.opacity !== undefined ? ` fill-opacity="${entry.opacity}"` : ''}/>`,
      `<text x="${x + 30}" y="${y}" font-size="12" fill="#1f2328">${esc(entry.label)}</text>`,
    );
    x += width;
  }
  return out;
}
