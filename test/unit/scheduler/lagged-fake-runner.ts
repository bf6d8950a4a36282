/**
 * FakeRunner with the overlap API: launch() queues a step (at most two not waited for, as the native step thread
 * allows), wait() runs the oldest one, resolving rows whose token is a reference to the previous launched step's
 * sampled token, the way native/src/napi/step-queue.h does. A step runs at wait() time, so a slot rewritten while a
 * step is launched would show up as a wrong token or an empty-slot error.
 */
import type { StepSequence, StepSequenceResult } from '../../../src/engine/model/runner-types.js';
import { FakeRunner } from './fake-runner.js';

export class LaggedFakeRunner extends FakeRunner {
  private readonly queue: StepSequence[][] = [];
  private previousTokens: number[] | null = null;
  launches = 0;
  /** Rows that took their token from the previous step. */
  references = 0;
  /** Launched steps that waited for their result while another was launched (the overlap actually happening). */
  overlapped = 0;
  /** Fail the step whose (0-based) launch index is listed, as a native error would. */
  failLaunches = new Set<number>();
  private readonly failing = new Set<StepSequence[]>();

  launch(seqs: StepSequence[]): void {
    if (this.queue.length >= 2) throw new Error('more than two launched steps');
    if (this.failLaunches.has(this.launches)) this.failing.add(seqs);
    this.launches++;
    if (this.queue.length > 0) this.overlapped++;
    this.queue.push(seqs);
  }

  wait(): StepSequenceResult[] {
    const seqs = this.queue.shift();
    if (!seqs) throw new Error('wait without launch');
    const usesPrevious = seqs.some((s) => s.tokenFromPrevious !== undefined);
    if (this.failing.has(seqs) || (usesPrevious && this.previousTokens === null)) {
      this.previousTokens = null;
      throw new Error('injected step failure');
    }
    const resolved = seqs.map((s) => {
      if (s.tokenFromPrevious === undefined) return s;
      this.references++;
      const token = this.previousTokens![s.tokenFromPrevious];
      if (token === undefined || token < 0) throw new Error(`reference to row ${s.tokenFromPrevious} without a token`);
      return { ...s, tokenIds: [token] };
    });
    const results = this.step(resolved);
    this.previousTokens = results.map((r) => r.tokenId);
    return results;
  }
}
