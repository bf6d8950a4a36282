// A node:test reporter that writes one JSON line per finished test or suite (name, file, kind, outcome, skip reason)
// for scripts/run-tests.mjs to count. node's own summary counts a skipped suite as nothing and a skipped case as one,
// with no reason; this record keeps both, with their reasons.
export default async function* recordReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const d = event.data;
    const reason = (value) => (value === undefined || value === false ? null : value === true ? '(no reason given)' : String(value));
    yield `${JSON.stringify({
      name: d.name,
      file: d.file ?? null,
      nesting: d.nesting,
      kind: d.details?.type === 'suite' ? 'suite' : 'case',
      outcome: event.type === 'test:fail' ? 'fail' : 'pass',
      skip: reason(d.skip),
      todo: reason(d.todo),
    })}\n`;
  }
}
