/**
 * The engine's own forward-step time (issue #12's "server ITL p50 minus engine step" subtracts it): a real server's
 * /metrics exports tslora_engine_step_seconds (phase decode / mixed) that a real Prometheus parser reads, it moves by
 * one decode observation per generated token after the first, and /get_server_info's engine stats agree with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { parsePrometheus } from '../../src/bench/server/prometheus.js';
import { engineStepFigures, readStepHistogram, stepHistogramDelta } from '../../src/bench/server/engine-step.js';
import { FIXTURE, get, greedy, post, startServer } from './server-harness.js';

interface Family {
  name: string;
  type: string;
  metrics: Array<{ labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }>;
}

test('tslora_engine_step_seconds: parses, counts one decode step per token after the first, matches the engine stats', async () => {
  const server = await startServer(['--model-path', FIXTURE('tiny-llama'), '--enable-metrics']);
  try {
    const scrapeText = async () => (await get(`${server.url}/metrics`)).body as string;
    const before = parsePrometheus(await scrapeText());
    const tokens = 12;
    const res = await post(`${server.url}/generate`, { text: 'hello there', sampling_params: greedy(tokens) });
    assert.equal(res.status, 200);
    assert.equal(res.body.meta_info.completion_tokens, tokens);
    const text = await scrapeText();

    // A real parser reads it as a histogram with a decode and a mixed series.
    const family = (parsePrometheusTextFormat(text.split('\n').filter((l) => l.includes('tslora_engine_step_seconds')).join('\n') + '\n') as Family[])[0];
    assert.equal(family?.name, 'tslora_engine_step_seconds');
    assert.equal(family.type, 'HISTOGRAM');

    const decode = stepHistogramDelta(readStepHistogram(before), readStepHistogram(parsePrometheus(text)))!;
    const mixed = stepHistogramDelta(readStepHistogram(before, 'mixed'), readStepHistogram(parsePrometheus(text), 'mixed'))!;
    assert.equal(decode.count, tokens - 1, 'the first token comes from the prefill step, every later one from a decode step');
    assert.ok(mixed.count >= 1, 'the prefill ran as a mixed step');
    const figures = engineStepFigures(decode)!;
    assert.ok(figures.decodeStepP50Ms > 0 && figures.decodeStepMeanMs > 0, JSON.stringify(figures));

    const engine = (await get(`${server.url}/get_server_info`)).body.engine;
    assert.equal(engine.decodeSteps, readStepHistogram(parsePrometheus(text))!.count);
    assert.ok(Math.abs(engine.decodeStepMsTotal / 1000 - readStepHistogram(parsePrometheus(text))!.sumS) < 1e-6);
  } finally {
    assert.equal(await server.stop(), 0, server.output());
  }
});
