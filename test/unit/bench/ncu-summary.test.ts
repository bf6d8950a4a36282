import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ncuMarkdown, parseCsvLine, parseNcuCsv } from '../../../bench/cuda/ncu-summary.js';

test('one ncu CSV line: quoted fields, commas and doubled quotes inside them, empty fields', () => {
  assert.deepEqual(parseCsvLine('"0","a, b","say ""hi""","","1,234"'), ['0', 'a, b', 'say "hi"', '', '1,234']);
  assert.deepEqual(parseCsvLine('plain,"q"'), ['plain', 'q']);
});

// Session 23's Nsight Compute details page of the decode qkv small-step shrink (one H100; the bench's own output and
// ncu's ==PROF== lines come first), as the device round wrote it.
test('the details page of a real device report: kernel, key metrics in order, rules by estimated speedup', () => {
  const text = gunzipSync(readFileSync(new URL('../../../bench/cuda/results/h100-s23/call1/gpu/lora/ncu-shrink-qkv.csv.gz', import.meta.url))).toString('utf8');
  const [report, ...rest] = parseNcuCsv(text);
  assert.equal(rest.length, 0);
  assert.match(report.kernel, /smallShrinkKernel/);
  assert.equal(report.grid, '(16, 4, 1)');
  const metric = (name: string) => report.metrics.find((m) => m.name === name)?.value;
  assert.equal(metric('Duration'), '9,248');
  assert.equal(metric('Warp Cycles Per Issued Instruction'), '8.23');
  assert.ok(report.rules.length >= 5);
  const md = ncuMarkdown('qkv.csv', [report]);
  assert.match(md, /- Duration: 9,248 ns\n- Compute \(SM\) Throughput: 8\.07 %/);
  const speedups = [...md.matchAll(/est\. speedup ([\d.]+) %/g)].map((m) => Number(m[1]));
  assert.deepEqual(speedups, [...speedups].sort((a, b) => b - a));
  assert.equal(speedups[0], 94.96);
});

test('the raw page: stall reasons and pipes ranked, the launch metrics kept, units row and program output skipped', () => {
  const header = ['ID', 'Process ID', 'Process Name', 'Host Name', 'Kernel Name', 'Context', 'Stream', 'Block Size', 'Grid Size', 'Device', 'CC',
    'gpu__time_duration.sum', 'launch__registers_per_thread', 'smsp__average_warps_issue_stalled_barrier_per_issue_active.ratio',
    'smsp__average_warps_issue_stalled_long_scoreboard_per_issue_active.ratio', 'smsp__average_warps_issue_stalled_math_pipe_throttle_per_issue_active.ratio',
    'sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_active', 'sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active', 'dram__bytes.sum'];
  const q = (row: string[]) => row.map((v) => `"${v.replace(/"/g, '""')}"`).join(',');
  const text = ['device: H100 (the bench\'s output)', '==PROF== Disconnected', q(header),
    q(['', '', '', '', '', '', '', '', '', '', '', 'nsecond', 'register/thread', 'ratio', 'ratio', 'ratio', '%', '%', 'byte']),
    q(['0', '7', 'lora_cuda_bench', 'h', 'void shrinkWideKernel<__nv_bfloat16, 3>(int)', '1', '13', '(256, 1, 1)', '(4, 1, 64)', '0', '9.0',
      '44,512', '117', '3.5', '11.25', '0.75', '31.2', '12.5', '35,000,000'])].join('\n');
  const [r] = parseNcuCsv(text);
  assert.equal(r.kernel, 'void shrinkWideKernel<__nv_bfloat16, 3>(int)');
  assert.deepEqual(r.stalls.map((s) => s.reason), ['long_scoreboard', 'barrier', 'math_pipe_throttle']);
  assert.deepEqual(r.pipes, [{ name: 'tensor', pct: 31.2 }, { name: 'lsu', pct: 12.5 }]);
  const md = ncuMarkdown('raw.csv', [r]);
  assert.match(md, /### raw\.csv: void shrinkWideKernel<__nv_bfloat16, 3> \(grid \(4, 1, 64\)/);
  assert.match(md, /- gpu__time_duration\.sum: 44,512\n- launch__registers_per_thread: 117/);
  assert.match(md, /stalls \(cycles per issued instruction\): long_scoreboard 11\.25, barrier 3\.50, math_pipe_throttle 0\.75/);
  assert.doesNotMatch(md, /dram__bytes/);
});

test('no ncu header: nothing to report', () => {
  assert.deepEqual(parseNcuCsv('==PROF== Connected\nno csv here'), []);
});
