/**
 * What the scheduler needs from the model runner (src/engine/model/runner.ts implements it); kept narrow so the
 * scheduling logic can be unit-tested with a deterministic stand-in. Host adapters are opaque handles.
 */
import type { StepSequence, StepSequenceResult } from './model/runner-types.js';

export interface SchedulerRunner<HostAdapter = unknown> {
  step(seqs: StepSequence[]): StepSequenceResult[];
  /** Milliseconds the last step() / wait() spent in the native forward alone (absent: the scheduler times it). */
  readonly lastForwardMs?: number;
  /**
   * Overlap scheduling: queues a step and returns at once; rows with `tokenFromPrevious` take their input token from
   * the step launched just before (on the device side, before the host has seen it). At most two launched steps
   * not yet waited for. Absent: the scheduler runs every step synchronously.
   */
  launch?(seqs: StepSequence[]): void;
  /** The oldest launched step's results; throws when that step failed. */
  wait?(): StepSequenceResult[];
  copyAdapterToSlot(slot: number, adapter: HostAdapter): void;
  copyAdapterToSlotAsync(slot: number, adapter: HostAdapter): Promise<void>;
  clearSlot(slot: number): void;
}
