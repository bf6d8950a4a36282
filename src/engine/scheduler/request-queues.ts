/**
 * The requests the scheduler holds: waiting (in arrival order) and running, by request id, and the aborts that
 * arrive outside a step (a failed adapter copy fails the requests that waited for it). Ending a request takes it out
 * of every queue once; its KV blocks go back through `releaseKv` (overlap-schedule.ts may defer that).
 */
import type { EngineFinish, TokenUpdate } from '../types.js';
import type { Sequence } from './sequence.js';

export class RequestQueues {
  waiting: Sequence[] = [];
  running: Sequence[] = [];
  private readonly byRid = new Map<string, Sequence>();
  private readonly pendingAborts: Array<{ seq: Sequence; message: string }> = [];

  constructor(private readonly releaseKv: (seq: Sequence) => void) {}

  enqueue(seq: Sequence): void {
    this.waiting.push(seq);
    this.byRid.set(seq.req.rid, seq);
  }

  get(rid: string): Sequence | undefined {
    return this.byRid.get(rid);
  }

  /** Moves admitted requests (in age order) from waiting to running. */
  start(admitted: Sequence[]): void {
    if (admitted.length === 0) return;
    const set = new Set(admitted);
    this.waiting = this.waiting.filter((s) => !set.has(s));
    this.running.push(...admitted);
  }

  finish(seq: Sequence): void {
    if (seq.finished) return;
    seq.finished = true;
    this.releaseKv(seq);
    this.byRid.delete(seq.req.rid);
    this.waiting = this.waiting.filter((s) => s !== seq);
    this.running = this.running.filter((s) => s !== seq);
  }

  /** Aborts every request (shutdown); returns their abort updates. */
  abortAll(message: string): TokenUpdate[] {
    const out: TokenUpdate[] = [];
    for (const seq of [...this.waiting, ...this.running]) {
      out.push({ rid: seq.req.rid, tokenIds: [], finish: { type: 'abort', message } });
      this.finish(seq);
    }
    return out;
  }

  /** The waiting requests for `adapterKey` are to be aborted with `message` (takeAsyncAborts hands them out). */
  abortWaitingFor(adapterKey: string, message: string): void {
    for (const seq of this.waiting.filter((s) => s.adapterKey === adapterKey)) this.pendingAborts.push({ seq, message });
  }

  /** Ends the requests abortWaitingFor named (those not ended meanwhile); returns their abort updates. */
  takeAsyncAborts(): TokenUpdate[] {
    const out: TokenUpdate[] = [];
    for (const { seq, message } of this.pendingAborts.splice(0)) {
      if (seq.finished) continue;
      const finish: EngineFinish = { type: 'abort', message };
      out.push({ rid: seq.req.rid, tokenIds: [], finish });
      this.finish(seq);
    }
    return out;
  }
}
