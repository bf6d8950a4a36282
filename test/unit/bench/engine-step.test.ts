/** The server's decode-step figures from two /metrics scrapes: histogram delta, interpolated p50, mean. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServerMetrics } from '../../../src/server/metrics.js';
import { parsePrometheus } from '../../../src/bench/server/prometheus.js';
import { engineStepFigures, histogramQuantileS, readStepHistogram, stepHistogramDelta } from '../../../src/bench/server/engine-step.js';

const host = { loaded: 0, hostEvictions: 0, loads: 0, outstanding: 0 };
const lora = { nameOfSlotId: () => null };
const scrape = async (m: ServerMetrics) => parsePrometheus(await m.render({ engine: null, host, lora }));

test('the decode-step p50 of a window comes from the scrapes around it, mixed steps and earlier steps left out', async () => {
  const m = new ServerMetrics('base');
  // before the window: slow steps that must not count
  m.engineSteps(Array.from({ length: 50 }, () => ({ forwardMs: 9, decodeOnly: true, batch: 1, tokens: 1 })));
  const before = await scrape(m);
  const window = [1.23, 1.27, 1.31, 1.24, 1.26, 1.29, 1.22];
  m.engineSteps(window.map((ms) => ({ forwardMs: ms, decodeOnly: true, batch: 4, tokens: 4 })));
  m.engineSteps([{ forwardMs: 40, decodeOnly: false, batch: 4, tokens: 300 }]);
  const after = await scrape(m);
  const delta = stepHistogramDelta(readStepHistogram(before), readStepHistogram(after))!;
  assert.equal(delta.count, window.length);
  const figures = engineStepFigures(delta)!;
  assert.equal(figures.decodeSteps, 7);
  const sorted = [...window].sort((a, b) => a - b);
  // all seven lie in one 0.1 ms bucket (1.2–1.3 ms) or the next: the interpolated p50 is within that width
  assert.ok(Math.abs(figures.decodeStepP50Ms - sorted[3]) < 0.1, `p50 ${figures.decodeStepP50Ms}`);
  assert.ok(Math.abs(figures.decodeStepMeanMs - window.reduce((a, b) => a + b) / window.length) < 1e-9);
  const mixed = stepHistogramDelta(readStepHistogram(before, 'mixed'), readStepHistogram(after, 'mixed'))!;
  assert.equal(mixed.count, 1);
});

test('an empty window has no figures; a quantile past the last bound reports that bound', () => {
  assert.equal(engineStepFigures({ buckets: [[0.001, 0], [Number.POSITIVE_INFINITY, 0]], count: 0, sumS: 0 }), null);
  assert.equal(histogramQuantileS({ buckets: [[0.001, 0], [Number.POSITIVE_INFINITY, 4]], count: 4, sumS: 40 }, 0.5), 0.001);
  assert.equal(readStepHistogram(new Map()), null);
});
