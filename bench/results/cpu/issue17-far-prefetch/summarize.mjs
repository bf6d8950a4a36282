// Summarizes a round.sh output folder: per decode.ts variant, every round's figures and their median / range.
//   node summarize.mjs DIR
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const byVariant = new Map();
for (const f of readdirSync(dir).filter((f) => /^[a-z0-9]+-\d+\.json$/.test(f)).sort()) {
  const [variant] = f.split('-');
  let d;
  try { d = JSON.parse(readFileSync(join(dir, f), 'utf8')); } catch { continue; }
  const row = {
    stepMs: d.batch1?.stepMs, readPct: 100 * d.batch1?.readFractionOfCopy, copyGBs: d.copyBandwidthGBs?.median,
    r16BaseMs: d.lora?.r16_csgmv?.batch1BaseStepMs, r16LoraMs: d.lora?.r16_csgmv?.batch1LoraStepMs,
    r16Pct: 100 * d.lora?.r16_csgmv?.batch1LoraCost, r64Pct: 100 * d.lora?.r64_csgmv?.batch1LoraCost,
    r64LoraMs: d.lora?.r64_csgmv?.batch1LoraStepMs,
  };
  if (!byVariant.has(variant)) byVariant.set(variant, []);
  byVariant.get(variant).push(row);
}
const median = (xs) => { const s = xs.filter(Number.isFinite).sort((a, b) => a - b); const n = s.length; return n ? (n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2) : NaN; };
const fmt = (xs, digits) => { const v = xs.filter(Number.isFinite); return v.length ? `${median(v).toFixed(digits)} (${v.map((x) => x.toFixed(digits)).join(' / ')})` : '-'; };
const keys = [['stepMs', 'base step ms', 2], ['readPct', 'read % of copy', 1], ['r16LoraMs', 'r16 LoRA step ms', 2], ['r16Pct', 'r16 cost %', 1], ['r64LoraMs', 'r64 LoRA step ms', 2], ['r64Pct', 'r64 cost %', 1]];
console.log(`| variant | ${keys.map((k) => k[1]).join(' | ')} |`);
console.log(`|---|${keys.map(() => '---').join('|')}|`);
for (const [variant, rows] of byVariant) console.log(`| ${variant} | ${keys.map(([k, , dg]) => fmt(rows.map((r) => r[k]), dg)).join(' | ')} |`);
