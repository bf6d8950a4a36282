// Turns the records of scripts/test-run/record-reporter.mjs into the run's summary: cases run / passed / failed,
// every skipped suite and case grouped by reason, and the verdict of the GPU requirement (a GPU suite that skips
// where a GPU is required fails the run).
import { relative } from 'node:path';

export function readRecords(text) {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

/** Counts, skips grouped by reason, and the GPU suites that skipped (files under gpuDir). */
export function summarize(records, { root, gpuDir = 'test/gpu' }) {
  const rel = (file) => (file ? relative(root, file.replace(/^file:\/\//, '')) : '(unknown file)');
  const cases = records.filter((r) => r.kind === 'case');
  const skipped = records.filter((r) => r.skip !== null);
  const byReason = new Map();
  for (const r of skipped) {
    const key = `${rel(r.file)}: ${r.skip}`;
    const entry = byReason.get(key) ?? { file: rel(r.file), reason: r.skip, suites: 0, cases: 0, names: [] };
    entry[r.kind === 'suite' ? 'suites' : 'cases'] += 1;
    if (r.kind === 'suite') entry.names.push(r.name);
    byReason.set(key, entry);
  }
  return {
    casesRun: cases.filter((r) => r.skip === null && r.todo === null).length,
    passed: cases.filter((r) => r.outcome === 'pass' && r.skip === null && r.todo === null).length,
    failed: cases.filter((r) => r.outcome === 'fail' && r.todo === null).length,
    // A suite fails with its failing cases, or alone when a hook (before/after) throws.
    failedSuites: records.filter((r) => r.kind === 'suite' && r.outcome === 'fail').length,
    todo: cases.filter((r) => r.todo !== null).length,
    skippedCases: skipped.filter((r) => r.kind === 'case').length,
    skippedSuites: skipped.filter((r) => r.kind === 'suite').length,
    skipGroups: [...byReason.values()],
    gpuSkips: skipped.filter((r) => rel(r.file).startsWith(`${gpuDir}/`)),
  };
}

export function formatSummary(s) {
  const lines = [];
  lines.push(
    `tslora tests: ${s.casesRun} cases run (${s.passed} passed, ${s.failed} failed${s.failedSuites ? `, ${s.failedSuites} suites failed` : ''}), ` +
      `${s.skippedCases} cases skipped, ` +
      `${s.skippedSuites} suites skipped (the cases inside a skipped suite never run and node counts none of them)${s.todo ? `, ${s.todo} todo` : ''}`,
  );
  for (const g of s.skipGroups) {
    const what = [g.suites ? `${g.suites} suite${g.suites > 1 ? 's' : ''}` : '', g.cases ? `${g.cases} case${g.cases > 1 ? 's' : ''}` : '']
      .filter(Boolean)
      .join(' + ');
    const names = g.names.length > 0 ? ` (${g.names.map((n) => `"${n}"`).join(', ')})` : '';
    lines.push(`  skipped ${what} in ${g.file}${names}: ${g.reason}`);
  }
  return lines.join('\n');
}
