// A slow float64 forward pass written straight from transformers' modeling code, used as the
// independent oracle for architectures without shared reference outputs. One sequence, no
// padding, no cache. Reads the tiny checkpoints that tiny-models.ts writes (full names, F32).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors } from "../../src/io/safetensors.js";

type Weights = Map<string, { shape: number[]; data: Float64Array }>;
type Config = Record<string, unknown>;

function readWeights(dir: string): Weights {
  const out: Weights = new Map();
  for (const [name, raw] of readSafetensors(join(dir, "model.safetensors")).tensors) {
    out.set(name, {
      shape: raw.shape,
      data: Float64Array.from(decodeToFloat32(raw.data, raw.dtype)),
    });
  }
  return out;
}

function get(weights: Weights, name: string): Float64Array {
  const t = weights.get(name);
  if (t === undefined) throw new Error(`reference forward: tensor ${name} not in checkpoint`);
  return t.data;
}

/** y = W x + b with W stored [out, in] (or [in, out] when `inOut`). */
function affine(
  w: Float64Array,
  b: Float64Array | null,
  x: Float64Array,
  out: number,
  inOut = false,
): Float64Array {
  const n = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b === null ? 0 : b[o];
    for (let i = 0; i < n; i++) s += (inOut ? w[i * out + o] : w[o * n + i]) * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  const ms = x.reduce((s, v) => s + v * v, 0) / x.length;
  return x.map((v, i) => (v / Math.sqrt(ms + eps)) * w[i]);
}

function layerNorm(x: Float64Array, w: Float64Array, b: Float64Array, eps: number): Float64Array {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + eps)) * w[i] + b[i]);
}

const geluTanh = (v: number): number =>
  0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const silu = (v: number): number => v / (1 + Math.exp(-v));

/** Causal softmax attention of one head: q, k, v are [T][D]; bias(i, j) is added to scores. */
function attendHead(
  q: Float64Array[],
  k: Float64Array[],
  v: Float64Array[],
  scale: number,
  bias: (j: number) => number,
): Float64Array[] {
  return q.map((qi, i) => {
    const scores = k
      .slice(0, i + 1)
      .map((kj, j) => qi.reduce((s, x, d) => s + x * kj[d], 0) * scale + bias(j));
    const max = Math.max(...scores);
    const e = scores.map((s) => Math.exp(s - max));
    const z = e.reduce((a, b) => a + b, 0);
    const out = new Float64Array(qi.length);
    e.forEach((p, j) => v[j].forEach((x, d) => (out[d] += (p / z) * x)));
    return out;
  });
}

function headSlice(x: Float64Array, start: number, size: number): Float64Array {
  return x.slice(start, start + size);
}

function logitsFrom(
  weights: Weights,
  head: string,
  xs: Float64Array[],
  vocab: number,
): Float64Array[] {
  return xs.map((x) => affine(get(weights, head), null, x, vocab));
}

function llamaForward(weights: Weights, c: Config, ids: number[]): Float64Array[] {
  const C = c.hidden_size as number;
  const H = c.num_attention_heads as number;
  const Hkv = (c.num_key_value_heads as number | undefined) ?? H;
  const D = (c.head_dim as number | undefined) ?? C / H;
  const V = c.vocab_size as number;
  const eps = c.rms_norm_eps as number;
  const theta = (c.rope_theta as number | undefined) ?? 10000;
  // Only the "linear" rope scaling is covered: positions are divided by the factor.
  const scaling = c.rope_scaling as { type?: string; factor?: number } | undefined;
  if (scaling !== undefined && scaling.type !== "linear") {
    throw new Error(`reference forward: rope_scaling ${JSON.stringify(scaling)} not covered`);
  }
  const ropeFactor = scaling?.factor ?? 1;
  const emb = get(weights, "model.embed_tokens.weight");
  let xs: Float64Array[] = ids.map((id) => emb.slice(id * C, (id + 1) * C));
  // rotate_half RoPE: feature i pairs with i + D/2, angle = position * theta^(-2i/D).
  const rope = (x: Float64Array, pos: number): Float64Array => {
    const out = new Float64Array(D);
    for (let i = 0; i < D / 2; i++) {
      const angle = pos / ropeFactor / theta ** ((2 * i) / D);
      out[i] = x[i] * Math.cos(angle) - x[i + D / 2] * Math.sin(angle);
      out[i + D / 2] = x[i + D / 2] * Math.cos(angle) + x[i] * Math.sin(angle);
    }
    return out;
  };
  const bias = (name: string): Float64Array | null => weights.get(name)?.data ?? null;
  for (let l = 0; l < (c.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    const n = xs.map((x) => rmsNorm(x, get(weights, `${p}input_layernorm.weight`), eps));
    const proj = (which: string, out: number): Float64Array[] =>
      n.map((x) =>
        affine(
          get(weights, `${p}self_attn.${which}.weight`),
          bias(`${p}self_attn.${which}.bias`),
          x,
          out,
        ),
      );
    const q = proj("q_proj", H * D);
    const k = proj("k_proj", Hkv * D);
    const v = proj("v_proj", Hkv * D);
    const ctx = xs.map(() => new Float64Array(H * D));
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / Hkv));
      const qh = q.map((x, t) => rope(headSlice(x, h * D, D), t));
      const kh = k.map((x, t) => rope(headSlice(x, g * D, D), t));
      const vh = v.map((x) => headSlice(x, g * D, D));
      attendHead(qh, kh, vh, 1 / Math.sqrt(D), () => 0).forEach((o, t) => ctx[t].set(o, h * D));
    }
    const o = ctx.map((x) =>
      affine(get(weights, `${p}self_attn.o_proj.weight`), bias(`${p}self_attn.o_proj.bias`), x, C),
    );
    xs = xs.map((x, t) => x.map((val, i) => val + o[t][i]));
    const m = xs.map((x) => rmsNorm(x, get(weights, `${p}post_attention_layernorm.weight`), eps));
    const I = c.intermediate_size as number;
    const mlp = m.map((x) => {
      const gate = affine(
        get(weights, `${p}mlp.gate_proj.weight`),
        bias(`${p}mlp.gate_proj.bias`),
        x,
        I,
      );
      const up = affine(get(weights, `${p}mlp.up_proj.weight`), bias(`${p}mlp.up_proj.bias`), x, I);
      return affine(
        get(weights, `${p}mlp.down_proj.weight`),
        bias(`${p}mlp.down_proj.bias`),
        gate.map((gv, i) => silu(gv) * up[i]),
        C,
      );
    });
    xs = xs.map((x, t) => x.map((val, i) => val + mlp[t][i]));
  }
  xs = xs.map((x) => rmsNorm(x, get(weights, "model.norm.weight"), eps));
  return logitsFrom(
    weights,
    weights.has("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight",
    xs,
    V,
  );
}

function bloomForward(weights: Weights, c: Config, ids: number[]): Float64Array[] {
  const C = c.hidden_size as number;
  const H = c.n_head as number;
  const D = C / H;
  const V = c.vocab_size as number;
  const eps = c.layer_norm_epsilon as number;
  const ln = (x: Float64Array, name: string): Float64Array =>
    layerNorm(x, get(weights, `${name}.weight`), get(weights, `${name}.bias`), eps);
  const lin = (x: Float64Array, name: string, out: number): Float64Array =>
    affine(get(weights, `${name}.weight`), get(weights, `${name}.bias`), x, out);
  // ALiBi (Press et al.): for n = largest power of two <= H, slope_i = 2^(-8i/n), i = 1..n;
  // the other heads take 2^(-8i/(2n)) for odd i.
  const n = 2 ** Math.floor(Math.log2(H));
  const slopes = Array.from({ length: n }, (_, i) => 2 ** ((-8 * (i + 1)) / n));
  for (let i = 1; slopes.length < H; i += 2) slopes.push(2 ** ((-8 * i) / (2 * n)));

  const emb = get(weights, "transformer.word_embeddings.weight");
  let xs: Float64Array[] = ids.map((id) =>
    ln(emb.slice(id * C, (id + 1) * C), "transformer.word_embeddings_layernorm"),
  );
  for (let l = 0; l < (c.n_layer as number); l++) {
    const p = `transformer.h.${l}.`;
    const normed = xs.map((x) => ln(x, `${p}input_layernorm`));
    const qkv = normed.map((x) => lin(x, `${p}self_attention.query_key_value`, 3 * C));
    const ctx = xs.map(() => new Float64Array(C));
    for (let h = 0; h < H; h++) {
      // Fused output layout per head: [q (D), k (D), v (D)].
      const q = qkv.map((x) => headSlice(x, h * 3 * D, D));
      const k = qkv.map((x) => headSlice(x, h * 3 * D + D, D));
      const v = qkv.map((x) => headSlice(x, h * 3 * D + 2 * D, D));
      attendHead(q, k, v, 1 / Math.sqrt(D), (j) => slopes[h] * j).forEach((o, t) =>
        ctx[t].set(o, h * D),
      );
    }
    // With apply_residual_connection_post_layernorm the residual is the normed input.
    const postNormResidual = c.apply_residual_connection_post_layernorm === true;
    xs = xs.map((x, t) => {
      const residual = postNormResidual ? normed[t] : x;
      return lin(ctx[t], `${p}self_attention.dense`, C).map((val, i) => val + residual[i]);
    });
    const m = xs.map((x) => ln(x, `${p}post_attention_layernorm`));
    xs = xs.map((x, t) => {
      const residual = postNormResidual ? m[t] : x;
      const up = lin(m[t], `${p}mlp.dense_h_to_4h`, 4 * C).map(geluTanh);
      return lin(up, `${p}mlp.dense_4h_to_h`, C).map((val, i) => val + residual[i]);
    });
  }
  xs = xs.map((x) => ln(x, "transformer.ln_f"));
  return logitsFrom(weights, "transformer.word_embeddings.weight", xs, V);
}

function gpt2Forward(weights: Weights, c: Config, ids: number[]): Float64Array[] {
  const C = c.n_embd as number;
  const H = c.n_head as number;
  const D = C / H;
  const V = c.vocab_size as number;
  const eps = c.layer_norm_epsilon as number;
  const inner = c.n_inner as number;
  const ln = (x: Float64Array, name: string): Float64Array =>
    layerNorm(x, get(weights, `${name}.weight`), get(weights, `${name}.bias`), eps);
  // Conv1D: weight [in, out], y = x W + b.
  const conv = (x: Float64Array, name: string, out: number): Float64Array =>
    affine(get(weights, `${name}.weight`), get(weights, `${name}.bias`), x, out, true);

  const wte = get(weights, "transformer.wte.weight");
  const wpe = get(weights, "transformer.wpe.weight");
  let xs: Float64Array[] = ids.map((id, t) =>
    wte.slice(id * C, (id + 1) * C).map((v, i) => v + wpe[t * C + i]),
  );
  for (let l = 0; l < (c.n_layer as number); l++) {
    const p = `transformer.h.${l}.`;
    const qkv = xs.map((x) => conv(ln(x, `${p}ln_1`), `${p}attn.c_attn`, 3 * C));
    const ctx = xs.map(() => new Float64Array(C));
    for (let h = 0; h < H; h++) {
      const q = qkv.map((x) => headSlice(x, h * D, D));
      const k = qkv.map((x) => headSlice(x, C + h * D, D));
      const v = qkv.map((x) => headSlice(x, 2 * C + h * D, D));
      const scale = 1 / Math.sqrt(D) / (c.scale_attn_by_inverse_layer_idx === true ? l + 1 : 1);
      attendHead(q, k, v, scale, () => 0).forEach((o, t) => ctx[t].set(o, h * D));
    }

    xs = xs.map((x, t) => conv(ctx[t], `${p}attn.c_proj`, C).map((val, i) => val + x[i]));
    xs = xs.map((x) => {
      const up = conv(ln(x, `${p}ln_2`), `${p}mlp.c_fc`, inner).map(geluTanh);
      return conv(up, `${p}mlp.c_proj`, C).map((val, i) => val + x[i]);
    });
  }

  xs = xs.map((x) => ln(x, "transformer.ln_f"));
  return logitsFrom(weights, "transformer.wte.weight", xs, V);
}

/** Returns float64 logits [T][V] of one token sequence for the tiny checkpoint in `dir`. */
export function referenceLogits(dir: string, ids: number[]): Float64Array[] {
  const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Config;
  const weights = readWeights(dir);
  switch (config.model_type) {
    case "llama":
    case "mistral":
    case "qwen2":
      return llamaForward(weights, config, ids);
    case "bloom":
      return bloomForward(weights, config, ids);
    case "gpt2":
      return gpt2Forward(weights, config, ids);
    default:
      throw new Error(`reference forward: model_type ${String(config.model_type)} not covered`);
  }
}
