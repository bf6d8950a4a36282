// Whether this run must exercise the GPU, and whether the CUDA addon loads and sees one.
import { spawnSync } from 'node:child_process';

/** The reason a GPU is required (a string), or null: TSLORA_REQUIRE_CUDA=1, or `nvidia-smi -L` listing a GPU.
 * TSLORA_REQUIRE_CUDA=0 turns the requirement off (a GPU machine running only the CPU backend on purpose). */
export function gpuRequirement() {
  if (process.env.TSLORA_REQUIRE_CUDA === '1') return 'TSLORA_REQUIRE_CUDA=1';
  if (process.env.TSLORA_REQUIRE_CUDA === '0') return null;
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
  if (smi.status === 0 && /GPU \d+/.test(smi.stdout)) return `nvidia-smi -L lists ${smi.stdout.trim().split('\n').length} GPU(s)`;
  return null;
}

/** null when the CUDA addon loads and reports a GPU, else what went wrong (loaded in a child through src/binding, the
 * only module that loads addons). */
export function cudaAddonProblem(root) {
  const probe = `import('./src/binding/index.ts').then((b) => { const i = b.loadNativeBackend('cuda').deviceInfo();
    if (!(i.gpuCount > 0)) { console.error('it reports no GPU (' + (i.reason ?? 'no reason given') + ')'); process.exit(1); } })
    .catch((e) => { console.error(e.message); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: root, encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr.trim().split('\n').pop() || `exit status ${r.status}`);
}
