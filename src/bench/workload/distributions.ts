/** Arrival gaps, prompt/output lengths and adapter popularity (spec g.4), all drawn from a SeededRandom. */
import type { Arrival, LengthDist, Popularity } from '../config/schema.js';
import type { SeededRandom } from './random.js';

/** Gap before the next request in ms, or 0 for burst; closed loop has no arrival times (null). */
export function nextArrivalGapMs(arrival: Arrival, random: SeededRandom): number | null {
  switch (arrival.type) {
    case 'poisson':
      return random.exponential(arrival.ratePerS) * 1000;
    case 'gamma': {
      // shape 1/CV², scale CV²/λ: mean 1/λ, coefficient of variation CV (spec g.4)
      const shape = 1 / (arrival.cv * arrival.cv);
      const scale = (arrival.cv * arrival.cv) / arrival.ratePerS;
      return random.gamma(shape, scale) * 1000;
    }
    case 'burst':
      return 0;
    case 'closed':
      return null;
  }
}

export function drawLength(dist: LengthDist, random: SeededRandom): number {
  switch (dist.type) {
    case 'fixed':
      return dist.value;
    case 'uniform':
      return random.int(dist.min, dist.max);
    case 'lognormal': {
      const value = Math.round(dist.median * Math.exp(dist.sigma * random.normal()));
      return Math.min(dist.max, Math.max(dist.min, value));
    }
  }
}

/** Picks adapter indices in [0, count) for request number `index`; null = base model. */
export class AdapterPicker {
  private readonly cumulative: Float64Array | null;

  constructor(
    private readonly popularity: Popularity,
    private readonly count: number,
  ) {
    if (popularity.type === 'zipf' && count > 0) {
      // p(i) ∝ (i+1)^-s, as a cumulative table searched by bisection
      this.cumulative = new Float64Array(count);
      let total = 0;
      for (let i = 0; i < count; i++) {
        total += Math.pow(i + 1, -popularity.s);
        this.cumulative[i] = total;
      }
      for (let i = 0; i < count; i++) this.cumulative[i] /= total;
    } else {
      this.cumulative = null;
    }
  }

  pick(index: number, random: SeededRandom): number | null {
    if (this.count === 0 || this.popularity.type === 'base') return null;
    switch (this.popularity.type) {
      case 'uniform':
        return random.int(0, this.count - 1);
      case 'distinct':
        return index % this.count;
      case 'identical':
        return 0;
      case 'zipf': {
        const u = random.next();
        const table = this.cumulative!;
        let lo = 0;
        let hi = table.length - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (table[mid] < u) lo = mid + 1;
          else hi = mid;
        }
        return lo;
      }
    }
  }
}
