/**
 * `tslora serve` checks the port and the device before it loads any weights: a taken port and `--device cuda`
 * without a usable CUDA addon exit 2 with one readable message, and no model-loading phase line is printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { runCli, startServe } from './cli-run.js';

function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

test('a taken port fails before the model loads, naming the port and what to do', async () => {
  const { server, port } = await holdPort();
  try {
    const result = await runCli(['serve', '--host', '127.0.0.1', '--port', String(port)]);
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.stderr.includes(`cannot listen on 127.0.0.1:${port} (another process is listening there)`), result.stderr);
    assert.ok(result.stderr.includes('Nothing was loaded') && result.stderr.includes('Choose another --port'), result.stderr);
    assert.ok(!result.stderr.includes('model loaded'), `the model was loaded before the port check:\n${result.stderr}`);
    assert.equal(result.stdout, '');
  } finally {
    server.close();
  }
});

test('--device cuda without a usable CUDA addon fails before the model loads, in one readable sentence', async (t) => {
  const serve = await startServe(['--device', 'cuda']);
  if (serve.url !== null) {
    serve.kill('SIGTERM');
    await serve.exitCode;
    t.skip('this machine has a working CUDA addon and GPU');
    return;
  }
  assert.equal(await serve.exitCode, 2, serve.stderr());
  const stderr = serve.stderr();
  assert.match(stderr, /^tslora serve: error: --device cuda was requested, but (this installation has no CUDA addon|the CUDA addon found no GPU|the CUDA addon could not be loaded)/m);
  assert.ok(stderr.includes('Run with --device cpu (or auto).'), stderr);
  // the old text nested a whole error in the sentence: "but The CUDA native addon ... --device cpu.. Use --device cpu"
  assert.ok(!/but The |\.\.|--device cpu.*--device cpu/.test(stderr), stderr);
  assert.ok(!stderr.includes('model loaded'), stderr);
});
