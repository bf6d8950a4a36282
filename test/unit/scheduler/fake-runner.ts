/**
 * Deterministic stand-in for the model runner, for scheduling-decision tests only (end-to-end tests use the real
 * engine). Each "slot" holds the id of the adapter copied into it; the next token depends on that adapter, the
 * previous token and the position, so a request run in the wrong slot or with the wrong KV gives other tokens.
 */
import type { StepSequence, StepSequenceResult } from '../../../src/engine/model/runner-types.js';
import type { SchedulerRunner } from '../../../src/engine/runner-port.js';

export class FakeRunner implements SchedulerRunner<string> {
  readonly slotContents: Array<string | null>;
  readonly log: string[] = [];
  readonly steps: StepSequence[][] = [];
  asyncCopies: Array<{ slot: number; adapter: string; resolve: () => void }> = [];

  constructor(numSlots: number) {
    this.slotContents = new Array(numSlots).fill(null);
  }

  static expectedNext(adapter: string | null, prevToken: number, position: number): number {
    let h = prevToken * 31 + position * 7;
    for (const c of adapter ?? 'base') h = (h * 17 + c.charCodeAt(0)) % 1000003;
    return 3 + (h % 50);
  }

  step(seqs: StepSequence[]): StepSequenceResult[] {
    this.steps.push(seqs);
    return seqs.map((s) => {
      if (!s.sampling) return { tokenId: -1, logprob: 0 };
      const adapter = s.slot < 0 ? null : this.slotContents[s.slot];
      if (s.slot >= 0 && adapter === null) throw new Error(`slot ${s.slot} is empty`);
      const last = s.tokenIds[s.tokenIds.length - 1];
      const position = s.startPosition + s.tokenIds.length - 1;
      return { tokenId: FakeRunner.expectedNext(adapter, last, position), logprob: -0.5 };
    });
  }

  copyAdapterToSlot(slot: number, adapter: string): void {
    this.log.push(`copy ${adapter}→${slot}`);
    this.slotContents[slot] = adapter;
  }

  copyAdapterToSlotAsync(slot: number, adapter: string): Promise<void> {
    this.log.push(`async ${adapter}→${slot}`);
    return new Promise((resolve) => {
      this.asyncCopies.push({ slot, adapter, resolve: () => { this.slotContents[slot] = adapter; resolve(); } });
    });
  }

  clearSlot(slot: number): void {
    this.log.push(`clear ${slot}`);
    this.slotContents[slot] = null;
  }
}

/** Tokens a request would get when run alone (greedy), from the same rule. */
export function expectedOutput(adapter: string | null, prompt: number[], count: number): number[] {
  const out: number[] = [];
  let prev = prompt[prompt.length - 1];
  let position = prompt.length - 1;
  for (let i = 0; i < count; i++) {
    prev = FakeRunner.expectedNext(adapter, prev, position);
    out.push(prev);
    position++;
  }
  return out;
}
