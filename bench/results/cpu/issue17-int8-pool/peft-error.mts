// The int8 and bf16 CPU LoRA pools against PyTorch + PEFT on the committed fixtures (not a test; the test is
// test/native/parity-pool-int8.test.ts): per adapter and prompt, the last-position logits' relative L2 error, the
// adapter's effect (relative L2 between PEFT's logits with and without it), their ratio, and whether the 16 greedy
// tokens equal PEFT's. csgmv backend.  node --import tsx bench/results/cpu/issue17-int8-pool/peft-error.mts
import { loadNativeBackend } from '../../../../src/binding/index.js';
import { ModelRunner } from '../../../../src/engine/model/runner.js';
import { relativeL2 } from '../../../../test/native/forward-reference.js';
import { BLOCK, BLOCKS_PER_SEQ, fillSlots, generate, loadParityFixture, PARITY_MODELS, readReference } from '../../../../test/native/parity-harness.js';
process.chdir(new URL('../../../../', import.meta.url).pathname);
const backend = loadNativeBackend('cpu');
for (const model of PARITY_MODELS) {
  const ref = readReference(model);
  const { loaded, adapters, targets, maxRank } = await loadParityFixture(ref);
  for (const dt of ['bf16', 'int8'] as const) {
  const runner = new ModelRunner(loaded, { backend, kvNumBlocks: 8 * BLOCKS_PER_SEQ, kvBlockSize: BLOCK, loraSlots: adapters.length, loraMaxRank: maxRank, loraTargetModules: targets, loraBackend: 'csgmv', maxLoraChunkSize: 16, numThreads: 2, loraPoolDtype: dt });
  const slotOf = await fillSlots(runner, ref, adapters);
  for (const a of ref.adapters) {
    const got = generate(runner, ref.prompts, ref.prompts.map(() => slotOf.get(a.name)!), ref.greedyTokens);
    const errs = ref.prompts.map((_, p) => relativeL2(got.lastLogits[p], a.prompts[p].lastLogits));
    const eff = ref.prompts.map((_, p) => relativeL2(Float32Array.from(a.prompts[p].lastLogits), ref.base[p].lastLogits));
    const same = ref.prompts.map((_, p) => JSON.stringify(got.tokens[p]) === JSON.stringify(a.prompts[p].greedy));
    console.log(model, dt, a.name, 'err', errs.map((e) => e.toExponential(2)).join(' '), 'effect', eff.map((e) => e.toExponential(2)).join(' '), 'ratio', errs.map((e, i) => (e / eff[i]).toFixed(4)).join(' '), 'greedy', same.join(' '));
  }
  runner.destroy();
  }
}
