/**
 * The exact law a sampler must follow, and goodness-of-fit tests of observed draws against it (shared by the CPU
 * sampler test and the GPU sampler test, test/gpu/cuda-sampling-law.test.ts).
 *
 * Law (SGLang's joint rule): p = softmax(l / T) in fp64; sort by p (ties by id); the token of rank r is kept when
 * r < top_k, the mass of the ranks before it is ≤ top_p, and p ≥ min_p · max p; kept tokens renormalised.
 *
 * Fit: two tests, each at half the false-failure budget, fail the fit:
 *  - exact per-token binomial bounds: for every token, P(|count − N·p| as large as seen) ≤ exp(−N · KL(q‖p))
 *    (Chernoff), with a union bound over the tokens, so the false-failure probability is ≤ α/2 whatever N is; a token
 *    of probability 0 drawn once fails at once;
 *  - Pearson's chi-square over the kept tokens (tokens merged into bins of expected count ≥ 20, where the asymptotic
 *    law is accurate), p-value from the regularised upper incomplete gamma function, rejected below α/2.
 */

export interface SamplingRule { temperature: number; topK: number; topP: number; minP: number }

export function softmaxOverT(logits: ArrayLike<number>, temperature: number): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < logits.length; i++) mx = Math.max(mx, logits[i] / temperature);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] / temperature - mx);
  return p.map((x) => x / sum);
}

export const rankOrder = (p: ArrayLike<number>): number[] => [...Array(p.length).keys()].sort((a, b) => p[b] - p[a] || a - b);

/** The probability of each id under the rule (0 for filtered ids). */
export function exactLaw(logits: ArrayLike<number>, rule: SamplingRule): Float64Array {
  const p = softmaxOverT(logits, rule.temperature);
  const order = rankOrder(p);
  const pmax = p[order[0]];
  const law = new Float64Array(p.length);
  let before = 0;
  let kept = 0;
  order.forEach((id, rank) => {
    const keep = (rule.topK <= 0 || rank < rule.topK) && before <= rule.topP && p[id] >= rule.minP * pmax;
    before += p[id];
    if (keep) kept += law[id] = p[id];
  });
  return law.map((x) => x / kept);
}

/** A top_p halfway between two consecutive "mass before rank r" values near `approx`, so fp32 rounding in a
 * sampler cannot move the cut; likewise for min_p between two consecutive probability ratios. */
export function safeTopP(logits: ArrayLike<number>, temperature: number, approx: number): number {
  const p = softmaxOverT(logits, temperature);
  const befores: number[] = [];
  let before = 0;
  for (const id of rankOrder(p)) { befores.push(before); before += p[id]; }
  const r = befores.findIndex((b) => b > approx);
  if (r <= 0) throw new Error(`no top_p cut near ${approx}`);
  return (befores[r - 1] + befores[r]) / 2;
}
export function safeMinP(logits: ArrayLike<number>, temperature: number, approx: number): number {
  const p = softmaxOverT(logits, temperature);
  const ratios = rankOrder(p).map((id) => p[id] / Math.max(...p));
  const r = ratios.findIndex((x) => x < approx);
  if (r <= 0) throw new Error(`no min_p cut near ${approx}`);
  return (ratios[r - 1] + ratios[r]) / 2;
}

/** The filters every sampler is checked with at one temperature: each alone and combined, cuts placed by
 * safeTopP / safeMinP. */
export function lawCases(logits: ArrayLike<number>, temperature: number): Array<[string, SamplingRule]> {
  const plain = { temperature, topK: 0, topP: 1, minP: 0 };
  const topP = (approx: number) => safeTopP(logits, temperature, approx);
  const minP = (approx: number) => safeMinP(logits, temperature, approx);
  return [
    ['no filter', plain],
    ['top-k 6', { ...plain, topK: 6 }],
    ['top-p ≈ 0.75', { ...plain, topP: topP(0.75) }],
    ['min-p ≈ 0.15', { ...plain, minP: minP(0.15) }],
    ['top-k 8 + top-p ≈ 0.9', { ...plain, topK: 8, topP: topP(0.9) }],
    ['top-p ≈ 0.9 + min-p ≈ 0.12', { ...plain, topP: topP(0.9), minP: minP(0.12) }],
    ['top-k 30 + top-p ≈ 0.95 + min-p ≈ 0.1', { ...plain, topK: 30, topP: topP(0.95), minP: minP(0.1) }],
  ];
}

function lnGamma(x: number): number {
  // Lanczos (g = 7, n = 9), |error| < 1e-13 for x > 0.5
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised upper incomplete gamma Q(a, x) (series below a + 1, Lentz continued fraction above). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000 && Math.abs(term) > Math.abs(sum) * 1e-15; n++) sum += term *= x / (a + n);
    return 1 - front * sum;
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

const kl = (q: number, p: number): number =>
  (q > 0 ? q * Math.log(q / p) : 0) + (q < 1 ? (1 - q) * Math.log((1 - q) / (1 - p)) : 0);

export interface FitResult {
  draws: number;
  keptTokens: number;
  chiSquare: number;
  degreesOfFreedom: number;
  pValue: number;
  /** Draws of tokens the law gives probability 0. */
  impossibleDraws: number;
  /** Tokens whose count is outside the exact binomial bound, with their counts. */
  binomialOutliers: string[];
  ok: boolean;
  describe(): string;
}

/** Goodness of fit of `counts` (per id) to `law` with false-failure probability ≤ alpha. */
export function fitToLaw(counts: ArrayLike<number>, law: ArrayLike<number>, alpha = 1e-6): FitResult {
  let draws = 0;
  for (let i = 0; i < counts.length; i++) draws += counts[i];
  const kept = [...Array(law.length).keys()].filter((i) => law[i] > 0).sort((a, b) => law[b] - law[a]);
  let impossibleDraws = 0;
  for (let i = 0; i < counts.length; i++) if (!(law[i] > 0)) impossibleDraws += counts[i];
  // Exact part: Chernoff bound per token, union bound over the kept tokens.
  const logThreshold = Math.log((2 * kept.length) / (alpha / 2));
  const binomialOutliers = kept
    .filter((i) => law[i] < 1 && draws * kl(counts[i] / draws, law[i]) > logThreshold)
    .map((i) => `id ${i}: ${counts[i]} draws, expected ${(draws * law[i]).toFixed(1)}`);
  // Pearson: merge the smallest-probability tokens (sorted descending) into bins of expected count ≥ 20.
  const bins: Array<{ expected: number; observed: number }> = [];
  let open = { expected: 0, observed: 0 };
  for (const i of kept) {
    open.expected += draws * law[i];
    open.observed += counts[i];
    if (open.expected >= 20) { bins.push(open); open = { expected: 0, observed: 0 }; }
  }
  if (open.expected > 0) {
    if (bins.length > 0) { bins[bins.length - 1].expected += open.expected; bins[bins.length - 1].observed += open.observed; }
    else bins.push(open);
  }
  const chiSquare = bins.reduce((s, b) => s + (b.observed - b.expected) ** 2 / b.expected, 0);
  const degreesOfFreedom = bins.length - 1;
  const pValue = degreesOfFreedom > 0 ? gammaQ(degreesOfFreedom / 2, chiSquare / 2) : 1;
  const ok = draws > 0 && impossibleDraws === 0 && binomialOutliers.length === 0 && pValue >= alpha / 2;
  return {
    draws, keptTokens: kept.length, chiSquare, degreesOfFreedom, pValue, impossibleDraws, binomialOutliers, ok,
    describe: () => `${draws} draws over ${kept.length} kept tokens: chi-square ${chiSquare.toFixed(1)} on ${degreesOfFreedom} df ` +
      `(p = ${pValue.toExponential(2)}), ${impossibleDraws} draws of filtered tokens` +
      (binomialOutliers.length ? `, outside the exact binomial bound: ${binomialOutliers.slice(0, 5).join('; ')}` : ''),
  };
}
