/**
 * `tslora serve --replicas 2`: two servers on consecutive ports, each answering on its own; a Ctrl-C (SIGINT to the
 * process group) reaches each replica once, through the supervisor: each drains and exits 0, and so does the supervisor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIXTURE, get } from './server-harness.js';
import { freePortRun, startReplicas } from './gateway-harness.js';

test('serve --replicas 2: consecutive ports, one SIGINT drains both, exit 0', async () => {
  const basePort = await freePortRun(2);
  const replicas = await startReplicas(2, basePort, ['--model-path', FIXTURE('tiny-llama')]);
  try {
    assert.equal(replicas.pids.length, 2);
    for (const port of [basePort, basePort + 1]) {
      assert.equal((await get(`http://127.0.0.1:${port}/health`)).status, 200);
      assert.equal((await get(`http://127.0.0.1:${port}/get_server_info`)).body.port, port);
    }
  } finally {
    // Ctrl-C in a terminal signals the whole foreground process group
    process.kill(-replicas.proc.pid!, 'SIGINT');
  }
  assert.equal(await replicas.exited, 0, replicas.output());
  const out = replicas.output();
  assert.equal(out.match(/\[replica \d\] tslora serve: SIGINT received, shutting down\./g)?.length, 2, out);
  assert.doesNotMatch(out, /again, exiting without waiting/);
  for (const pid of replicas.pids) assert.throws(() => process.kill(pid, 0), 'the replica process is gone');
});
