/** The decode CUDA-graph maximum the GPU engine gets: on by default, bounded, off with --disable-cuda-graph. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cudaGraphMaxBatchSize, DEFAULT_CUDA_GRAPH_MAX_BS } from '../../../src/engine/worker/cuda-graph-size.js';

test('graphs are on by default, up to the running-request limit and the default cap', () => {
  assert.equal(cudaGraphMaxBatchSize({ disableCudaGraph: false, cudaGraphMaxBs: null, maxRunningRequests: 48 }), 48);
  assert.equal(cudaGraphMaxBatchSize({ disableCudaGraph: false, cudaGraphMaxBs: null, maxRunningRequests: 4096 }), DEFAULT_CUDA_GRAPH_MAX_BS);
});

test('--cuda-graph-max-bs is taken as given and --disable-cuda-graph wins', () => {
  assert.equal(cudaGraphMaxBatchSize({ disableCudaGraph: false, cudaGraphMaxBs: 256, maxRunningRequests: 64 }), 256);
  assert.equal(cudaGraphMaxBatchSize({ disableCudaGraph: true, cudaGraphMaxBs: 256, maxRunningRequests: 64 }), 0);
  assert.equal(cudaGraphMaxBatchSize({ disableCudaGraph: true, cudaGraphMaxBs: null, maxRunningRequests: 64 }), 0);
});
