/**
 * Every validation rule of spec a.2 (and the general checks of a.5) through the real binary: exit status 2, one
 * message on stderr that names what was given, and nothing on stdout. All cases fail before anything loads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runCli } from './cli-run.js';

const M = ['--model-path', '/nonexistent/model'];
const pinnedEntry = (name: string) => JSON.stringify({ lora_name: name, lora_path: `./${name}`, pinned: true });

const CASES: Array<{ rule: string; args: string[]; env?: Record<string, string>; expect: string[] }> = [
  { rule: '1', args: [...M, '--max-loras-per-batch', '0'], expect: ['--max-loras-per-batch must be a positive integer (got 0)'] },
  { rule: '2 (--lora-paths alone turns LoRA on, so rule 12 applies)', args: [...M, '--lora-paths', 'a=./a', '--max-lora-chunk-size', '48'], expect: ['--max-lora-chunk-size must be 16, 32, 64 or 128'] },
  { rule: '3 (LoRA rules skipped while off)', args: [...M, '--no-enable-lora', '--lora-paths', '=./a', '--served-model-name', 'a:b'], expect: ["must not contain ':'"] },
  { rule: '4 (unset)', args: [...M, '--lora-paths', 'a=./a', '--enable-lora-overlap-loading'], expect: ['--enable-lora-overlap-loading', '--max-loaded-loras must be set', '(= 16)'] },
  { rule: '4 (too large)', args: [...M, '--lora-paths', 'a=./a', '--enable-lora-overlap-loading', '--max-loaded-loras', '40'], expect: ['at most 2 × --max-loras-per-batch (= 16); got 40'] },
  { rule: '5', args: [...M, '--lora-paths', '{"name":"a"}'], expect: [`'{"name":"a"}' looks like JSON`, '"lora_name" and "lora_path"'] },
  { rule: '6 (empty name)', args: [...M, '--lora-paths', '=./a'], expect: ["--lora-paths entry '=./a' has an empty adapter name"] },
  { rule: '6 (duplicate)', args: [...M, '--lora-paths', 'sql=./a', 'sql=./b'], expect: ["adapter name 'sql' appears twice in --lora-paths"] },
  { rule: '7', args: [...M, '--lora-paths', 'a', '--lora-target-modules', 'all', 'q_proj'], expect: ["'all' must be the only value of --lora-target-modules (got: all, q_proj)"] },
  { rule: '8', args: [...M, '--lora-paths', 'a', '--lora-target-modules', 'mlp'], expect: ["unknown LoRA target module 'mlp'", 'q_proj k_proj v_proj', 'or all'] },
  { rule: '9', args: [...M, '--enable-lora', '--max-lora-rank', '16'], expect: ['Without --lora-paths the adapter pool cannot be sized', '--max-lora-rank and --lora-target-modules'] },
  { rule: '10', args: [...M, '--lora-paths', 'a', '--max-loaded-loras', '4'], expect: ['--max-loaded-loras (4) must be at least --max-loras-per-batch (8)'] },
  { rule: '11', args: [...M, '--lora-paths', 'a', 'b', 'c', '--max-loras-per-batch', '1', '--max-loaded-loras', '2'], expect: ['--lora-paths lists 3 adapters but --max-loaded-loras is 2'] },
  { rule: '12', args: [...M, '--lora-paths', 'a', '--max-lora-chunk-size', '48'], expect: ['--max-lora-chunk-size must be 16, 32, 64 or 128 (got 48)'] },
  { rule: '13', args: [...M, '--lora-paths', 'a', '--lora-drain-wait-threshold', '-1'], expect: ['--lora-drain-wait-threshold must be ≥ 0 seconds (got -1)'] },
  { rule: '14', args: [...M, '--max-loras-per-batch', '3', '--lora-paths', pinnedEntry('a'), pinnedEntry('b'), pinnedEntry('c')], expect: ['3 adapters are pinned', 'at most 2', 'starve'] },
  { rule: '15', args: [...M, '--served-model-name', 'llama:8b'], expect: ["--served-model-name must not contain ':'"] },
  { rule: 'port range', args: [...M, '--port', '70000'], expect: ['--port must be an integer from 0 to 65535 (got 70000)'] },
  { rule: 'mem-fraction', args: [...M, '--mem-fraction-static', '1.5'], expect: ['--mem-fraction-static must be a fraction between 0 and 1', '1.5'] },
  { rule: 'tp-size alias', args: [...M, '--tp', '0'], expect: ['--tp-size must be at least 1 (got 0)'] },
  { rule: 'context-length', args: [...M, '--context-length', '0'], expect: ['--context-length must be at least 1'] },
  { rule: 'enum', args: [...M, '--lora-backend', 'flashinfer'], expect: ['--lora-backend must be one of triton, csgmv (got flashinfer)', 'deprecated'] },
  { rule: 'integer', args: [...M, '--max-loras-per-batch', 'eight'], expect: ['--max-loras-per-batch must be an integer (got eight)'] },
  { rule: 'env value', args: M, env: { TSLORA_MAX_LORAS_PER_BATCH: '0' }, expect: ['--max-loras-per-batch must be a positive integer (got 0 from TSLORA_MAX_LORAS_PER_BATCH)'] },
  { rule: 'flag beats env', args: [...M, '--port', '8000', '--served-model-name', 'a:b'], env: { TSLORA_PORT: 'not-a-port' }, expect: ["must not contain ':'"] },
  { rule: 'alias given twice', args: ['--model', '/a', '--model-path', '/b'], expect: ['--model-path "/b" and --model "/a" set the same option'] },
  { rule: 'unknown flag', args: [...M, '--max-lora-ranks', '8'], expect: ["unknown option '--max-lora-ranks'", '--max-lora-rank'] },
];

for (const c of CASES) {
  test(`serve rejects: ${c.rule}`, async () => {
    const result = await runCli(['serve', ...c.args], { env: c.env });
    assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
    for (const fragment of c.expect) assert.ok(result.stderr.includes(fragment), `stderr lacks '${fragment}':\n${result.stderr}`);
    assert.equal(result.stdout, '');
  });
}

test('serve: config file values are checked and named; env beats the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tslora-cli-'));
  try {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ modelPath: '/m', 'max-loras-per-batch': 0 }));
    let result = await runCli(['serve', '--config', bad]);
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes(`got 0 from 'maxLorasPerBatch' in ${bad}`), result.stderr);

    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ modelPath: '/m', maxLoraRnk: 8 }));
    result = await runCli(['serve'], { env: { TSLORA_CONFIG: unknown } });
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes("unknown key 'maxLoraRnk'") && result.stderr.includes('max-lora-rank'), result.stderr);

    // the file's bad port is overridden by the environment, so the error that remains is rule 15
    const overridden = join(dir, 'overridden.json');
    writeFileSync(overridden, JSON.stringify({ modelPath: '/m', port: 'x', servedModelName: 'a:b' }));
    result = await runCli(['serve', '--config', overridden], { env: { TSLORA_PORT: '8000' } });
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes("must not contain ':'"), result.stderr);

    result = await runCli(['serve', '--config', join(dir, 'missing.json')]);
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes('does not exist'), result.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
