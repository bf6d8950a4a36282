/**
 * One admission pass of spec c.6 over the waiting requests, in age order: a request that cannot enter is skipped,
 * never blocks the ones behind it. It must fit the running-request cap, not be held back by a drain (drainer.ts), fit
 * the adapter budget (admission.ts's rule over the batch's adapters, plus the pending copies with overlap loading),
 * have its adapter's slot (overlap loading: a copy starts now and the request waits for it) and get its KV blocks.
 */
import type { KvCacheManager } from '../kv/kv-cache.js';
import { BASE_ADAPTER_ID } from '../lora/slot-pool.js';
import { canAdmitAdapter } from './admission.js';
import type { DeviceAdapters } from './device-adapters.js';
import type { Drainer } from './drainer.js';
import type { Sequence } from './sequence.js';

export interface AdmissionView<HostAdapter> {
  waiting: readonly Sequence[];
  runningCount: number;
  /** Adapters of the running batch and of the launched steps; the admitted requests' adapters are added. */
  inBatch: Set<string>;
  numSlots: number;
  overlapLoading: boolean;
  maxRunningRequests: number;
  device: DeviceAdapters<HostAdapter>;
  drainer: Drainer;
  kv: KvCacheManager;
  counters: { cachedTokens: number };
}

export interface AdmissionOutcome {
  /** In age order; each has its KV allocation. */
  admitted: Sequence[];
  /** Adapters the admitted requests need that have no slot yet (synchronous loading: the caller loads them). */
  needSlot: Set<string>;
  /** Adapters that could not enter → arrival time of their oldest waiting request (the drainer's input). */
  blockedSince: Map<string, number>;
  /** Requests that wait for an adapter copy in flight (overlap loading). */
  waitingOnLoad: number;
}

export function admitWaiting<HostAdapter>(view: AdmissionView<HostAdapter>): AdmissionOutcome {
  const { inBatch, numSlots, overlapLoading, maxRunningRequests, device, drainer, kv } = view;
  const { slots, pinned } = device;
  drainer.prune(inBatch, new Set(view.waiting.map((s) => s.adapterKey)));
  const pending = new Set(slots.loadingIds());
  const needSlot = new Set<string>();
  const blockedSince = new Map<string, number>();
  let waitingOnLoad = 0;
  const admitted: Sequence[] = [];
  for (const seq of view.waiting) {
    if (view.runningCount + admitted.length >= maxRunningRequests) break;
    const x = seq.adapterKey;
    if (!drainer.allows(seq)) continue;
    const budgetSet = overlapLoading ? new Set([...inBatch, ...pending]) : inBatch;
    if (!canAdmitAdapter(x, budgetSet, numSlots, pinned)) {
      if (!blockedSince.has(x)) blockedSince.set(x, seq.arrivedAtMs);
      continue;
    }
    const state = slots.state(x);
    if (overlapLoading && state === 'LOADING') {
      waitingOnLoad++;
      continue;
    }
    if (overlapLoading && state === 'NOT_LOADED') {
      const choice = slots.choose(new Set([...inBatch, ...pending, x]), pinned);
      if (!choice) {
        if (!blockedSince.has(x)) blockedSince.set(x, seq.arrivedAtMs);
        continue;
      }
      device.load(x, choice.slot, x !== BASE_ADAPTER_ID);
      if (x !== BASE_ADAPTER_ID) {
        pending.add(x);
        waitingOnLoad++;
        continue;
      }
    }
    const usePrefixCache = seq.req.logprobStartLen < 0;
    const alloc = kv.tryAllocate(x, seq.req.promptTokenIds, seq.budgetTokens, usePrefixCache);
    if (!alloc) continue;
    seq.alloc = alloc;
    seq.computed = alloc.cachedTokens;
    view.counters.cachedTokens += alloc.cachedTokens;
    if (seq.req.logprobStartLen >= 0) {
      seq.promptLogprobs = new Array(seq.promptLen).fill(null);
      if (seq.req.sampling.topLogprobsNum > 0) seq.promptTopLogprobs = new Array(seq.promptLen).fill(null);
    }
    admitted.push(seq);
    inBatch.add(x);
    if (!overlapLoading && slots.state(x) === 'NOT_LOADED') needSlot.add(x);
  }
  return { admitted, needSlot, blockedSince, waitingOnLoad };
}
