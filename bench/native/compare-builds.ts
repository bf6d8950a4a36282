/**
 * Whole-build comparison (not a test): runs bench/native/decode.ts of a baseline checkout (with its own native
 * build, e.g. `git archive <commit> | tar -x -C DIR`, node_modules linked, `npm run build:native` there) and of this
 * checkout in alternation, round after round, and reports per-round ratios (this / baseline) of prefill tok/s, batch-1
 * decode step time and decode weight read rate as a fraction of the copy bandwidth measured beside it.
 *   node --import tsx bench/native/compare-builds.ts --baseline DIR [--rounds 3] [--steps 8] [--out FILE]
 * Base model only (--skip-lora), the 125M preset.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { median } from './bench-model.js';

const { values: args } = parseArgs({
  options: {
    baseline: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    steps: { type: 'string', default: '8' },
    out: { type: 'string' },
  },
});
if (!args.baseline) throw new Error('--baseline DIR: a checkout of the baseline commit with its native addon built');
const here = resolve(import.meta.dirname, '../..');

interface Figures {
  prefillTokensPerS: number;
  decodeStepMs: number;
  readFractionOfCopy: number;
}

function run(root: string): Figures {
  const extra = root === here ? ['--prefill-rounds', '1'] : []; // a baseline's decode.ts may not know the option
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/native/decode.ts'), '--preset', '125m', '--skip-lora', '--steps', args.steps!, ...extra, '--json'], {
    cwd: root, encoding: 'utf8', maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`decode.ts in ${root} failed: ${r.stderr}`);
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  // The baseline's decode.ts may predate the current JSON names (prefill256 / fractionOfCopy).
  return {
    prefillTokensPerS: j.prefill?.packedTokensPerS ?? j.prefill256.tokensPerS,
    decodeStepMs: j.batch1.stepMs,
    readFractionOfCopy: j.batch1.readFractionOfCopy ?? j.batch1.fractionOfCopy,
  };
}

const rounds: Array<{ baseline: Figures; current: Figures }> = [];
for (let i = 0; i < Number(args.rounds); i++) {
  const baseline = run(resolve(args.baseline));
  const current = run(here);
  rounds.push({ baseline, current });
  console.error(`round ${i + 1}: prefill ${baseline.prefillTokensPerS.toFixed(0)} -> ${current.prefillTokensPerS.toFixed(0)} tok/s, decode ${baseline.decodeStepMs.toFixed(2)} -> ${current.decodeStepMs.toFixed(2)} ms`);
}
const ratio = (f: (x: Figures) => number) => median(rounds.map((r) => f(r.current) / f(r.baseline)));
const summary = {
  rounds,
  prefillSpeedup: ratio((x) => x.prefillTokensPerS),
  decodeStepRatio: ratio((x) => x.decodeStepMs),
  readFraction: { baseline: median(rounds.map((r) => r.baseline.readFractionOfCopy)), current: median(rounds.map((r) => r.current.readFractionOfCopy)) },
};
if (args.out) writeFileSync(args.out, JSON.stringify(summary, null, 2) + '\n');
console.log(`prefill speedup ${summary.prefillSpeedup.toFixed(2)}x, decode step ratio ${summary.decodeStepRatio.toFixed(2)}, read fraction of copy bandwidth ${summary.readFraction.baseline.toFixed(2)} -> ${summary.readFraction.current.toFixed(2)} (medians of ${rounds.length} alternating rounds)`);
