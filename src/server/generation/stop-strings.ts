/**
 * Stop strings over streamed text: finds the earliest match, and tells how much of the tail must be held back
 * because it could still become the start of a stop string.
 */
export class StopStringMatcher {
  private readonly stops: string[];

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  get active(): boolean {
    return this.stops.length > 0;
  }

  /** Earliest match in `text` at or after `from` (the caller passes a little before the new text). */
  find(text: string, from: number): { index: number; stop: string } | null {
    let best: { index: number; stop: string } | null = null;
    for (const stop of this.stops) {
      const index = text.indexOf(stop, Math.max(0, from));
      if (index >= 0 && (!best || index < best.index)) best = { index, stop };
    }
    return best;
  }

  /** Length of the longest tail of `text` that is a proper prefix of some stop string. */
  holdBack(text: string): number {
    let hold = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, text.length); k > hold; k--) {
        if (text.endsWith(stop.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }

  get longest(): number {
    return this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }
}
