/**
 * A straightforward float64 JS reference of the decoder forward pass (transformers' Llama / Qwen2 / Qwen3 math,
 * with optional LoRA deltas y += σ·(x·Aᵀ)·Bᵀ), used to check the native forward on tiny random models.
 * Whole sequence at once, no KV cache: logits for every position.
 */
import type { ModelSpec } from '../../src/engine/model/types.js';
import { fromBf16Bits, toBf16Bits } from './forward-random-model.js';

export interface ReferenceLora {
  /** tensor values of writeRandomAdapter(keepValues): `layers.{l}.{module}.lora_A.weight` etc. */
  values: Map<string, Float32Array>;
  rank: number;
  scaling: number;
}

type Vec = Float64Array;

function matvec(w: Float32Array, rows: number, cols: number, x: Vec): Vec {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const off = r * cols;
    for (let c = 0; c < cols; c++) s += w[off + c] * x[c];
    y[r] = s;
  }
  return y;
}

function rmsNorm(x: Vec, w: Float32Array, eps: number): Vec {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => w[i] * v * inv);
}

/** inv_freq as transformers computes it (default, linear, llama3). */
export function referenceInvFreq(spec: Pick<ModelSpec, 'headDim' | 'ropeTheta' | 'ropeScaling'>): number[] {
  const D = spec.headDim;
  const inv: number[] = [];
  for (let i = 0; i < D; i += 2) inv.push(1 / spec.ropeTheta ** (i / D));
  const s = spec.ropeScaling;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  if (s.type === 'llama3') {
    const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    return inv.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      const scaled = wavelen > lowWavelen ? f / s.factor : f;
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      const smoothed = (1 - smooth) * (scaled / s.factor) + smooth * scaled;
      const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      return medium ? smoothed : scaled;
    });
  }
  return inv;
}

export function referenceRope(x: Vec, numHeads: number, D: number, pos: number, inv: number[]): void {
  const half = D / 2;
  for (let h = 0; h < numHeads; h++) {
    for (let i = 0; i < half; i++) {
      const a = pos * inv[i];
      const c = Math.cos(a);
      const s = Math.sin(a);
      const x1 = x[h * D + i];
      const x2 = x[h * D + i + half];
      x[h * D + i] = x1 * c - x2 * s;
      x[h * D + i + half] = x2 * c + x1 * s;
    }
  }
}

/** kvBf16: keys and values are rounded to bf16 (via fp32) before attention, as a bf16 KV cache stores them. */
export function referenceForward(
  spec: ModelSpec, values: Map<string, Float32Array>, tokens: number[], lora?: ReferenceLora, options: { kvBf16?: boolean } = {},
): Float64Array[] {
  const H = spec.hiddenSize;
  const I = spec.intermediateSize;
  const D = spec.headDim;
  const nH = spec.numHeads;
  const nKv = spec.numKvHeads;
  const eps = spec.rmsNormEps;
  const inv = referenceInvFreq(spec);
  const v = (name: string): Float32Array => {
    const t = values.get(name);
    if (!t) throw new Error(`reference: missing tensor ${name}`);
    return t;
  };
  const delta = (key: string, x: Vec, out: number): Vec | null => {
    if (!lora) return null;
    const a = lora.values.get(`${key}.lora_A.weight`);
    const b = lora.values.get(`${key}.lora_B.weight`);
    if (!a || !b) return null;
    const u = matvec(a, lora.rank, x.length, x);
    return matvec(b, out, lora.rank, u).map((z) => z * lora.scaling);
  };
  const proj = (l: number, module: string, w: Float32Array, out: number, x: Vec): Vec => {
    const y = matvec(w, out, x.length, x);
    const d = delta(`layers.${l}.${module}`, x, out);
    if (d) for (let i = 0; i < out; i++) y[i] += d[i];
    return y;
  };

  const emb = v('model.embed_tokens.weight');
  let hidden: Vec[] = tokens.map((t) => {
    const row = Float64Array.from(emb.subarray(t * H, (t + 1) * H));
    if (lora?.values.has('embed_tokens.lora_A.weight')) {
      const a = lora.values.get('embed_tokens.lora_A.weight')!; // [r, vocab]
      const b = lora.values.get('embed_tokens.lora_B.weight')!; // [H, r]
      const u = new Float64Array(lora.rank).map((_, k) => a[k * spec.vocabSize + t]);
      const d = matvec(b, H, lora.rank, u);
      for (let i = 0; i < H; i++) row[i] += lora.scaling * d[i];
    }
    return row;
  });

  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const ks: Vec[] = [];
    const vs: Vec[] = [];
    const qs: Vec[] = [];
    hidden.forEach((h, pos) => {
      const x = rmsNorm(h, v(`${p}input_layernorm.weight`), eps);
      const q = proj(l, 'q_proj', v(`${p}self_attn.q_proj.weight`), nH * D, x);
      const k = proj(l, 'k_proj', v(`${p}self_attn.k_proj.weight`), nKv * D, x);
      const vv = proj(l, 'v_proj', v(`${p}self_attn.v_proj.weight`), nKv * D, x);
      if (spec.qkvBias) {
        const qb = v(`${p}self_attn.q_proj.bias`);
        const kb = v(`${p}self_attn.k_proj.bias`);
        const vb = v(`${p}self_attn.v_proj.bias`);
        q.forEach((_, i) => (q[i] += qb[i]));
        k.forEach((_, i) => (k[i] += kb[i]));
        vv.forEach((_, i) => (vv[i] += vb[i]));
      }
      if (spec.qkNorm) {
        for (let h2 = 0; h2 < nH; h2++) q.set(rmsNorm(q.subarray(h2 * D, (h2 + 1) * D), v(`${p}self_attn.q_norm.weight`), eps), h2 * D);
        for (let h2 = 0; h2 < nKv; h2++) k.set(rmsNorm(k.subarray(h2 * D, (h2 + 1) * D), v(`${p}self_attn.k_norm.weight`), eps), h2 * D);
      }
      referenceRope(q, nH, D, pos, inv);
      referenceRope(k, nKv, D, pos, inv);
      qs.push(q);
      if (options.kvBf16) {
        for (const a of [k, vv]) a.forEach((x, i) => (a[i] = fromBf16Bits(toBf16Bits(Math.fround(x)))));
      }
      ks.push(k);
      vs.push(vv);
    });
    const group = nH / nKv;
    hidden = hidden.map((h, t) => {
      const attn = new Float64Array(nH * D);
      for (let hh = 0; hh < nH; hh++) {
        const kvh = Math.floor(hh / group);
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) s += qs[t][hh * D + d] * ks[j][kvh * D + d];
          scores.push(s / Math.sqrt(D));
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let d = 0; d < D; d++) attn[hh * D + d] += (e[j] / sum) * vs[j][kvh * D + d];
      }
      const o = proj(l, 'o_proj', v(`${p}self_attn.o_proj.weight`), H, attn);
      const h1 = h.map((x, i) => x + o[i]);
      const x2 = rmsNorm(h1, v(`${p}post_attention_layernorm.weight`), eps);
      const g = proj(l, 'gate_proj', v(`${p}mlp.gate_proj.weight`), I, x2);
      const u = proj(l, 'up_proj', v(`${p}mlp.up_proj.weight`), I, x2);
      const act = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const down = proj(l, 'down_proj', v(`${p}mlp.down_proj.weight`), H, act);
      return h1.map((x, i) => x + down[i]);
    });
  }
  const lm = spec.tieWordEmbeddings ? emb : v('lm_head.weight');
  return hidden.map((h) => {
    const x = rmsNorm(h, v('model.norm.weight'), eps);
    const logits = matvec(lm, spec.vocabSize, H, x);
    const d = lora ? (() => {
      const a = lora.values.get('lm_head.lora_A.weight');
      const b = lora.values.get('lm_head.lora_B.weight');
      if (!a || !b) return null;
      return matvec(b, spec.vocabSize, lora.rank, matvec(a, lora.rank, H, x)).map((z) => z * lora.scaling);
    })() : null;
    if (d) for (let i = 0; i < spec.vocabSize; i++) logits[i] += d[i];
    return logits;
  });
}

/** Relative L2 distance ‖a − b‖ / ‖b‖. */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
