/**
 * What the scheduler needs from the model runner (src/engine/model/runner.ts implements it); kept narrow so the
 * scheduling logic can be unit-tested with a deterministic stand-in. Host adapters are opaque handles.
 */
import type { StepSequence, StepSequenceResult } from './model/runner-types.js';

export interface SchedulerRunner<HostAdapter = unknown> {
  step(seqs: StepSequence[]): StepSequenceResult[];
  /** Milliseconds the last step() spent in the native forward alone (absent: the scheduler times step() itself). */
  readonly lastForwardMs?: number;
  copyAdapterToSlot(slot: number, adapter: HostAdapter): void;
  copyAdapterToSlotAsync(slot: number, adapter: HostAdapter): Promise<void>;
  clearSlot(slot: number): void;
}
