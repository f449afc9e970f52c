// Weight quantization formats and their plain-TypeScript encoders and decoders: the oracle for the
// wasm kernels in wasm/gemm-quant.ts, and the code that quantizes weights when a model loads.
//
// Both formats store a weight as W [N, K] (N output features, K input features), each row padded
// with zeros to Kp = K rounded up to 64, so that kernels read whole 64-weight blocks.
//
// int8 (weight-only, absmax per output row, as LLM.int8 quantizes weights): code[n, k] =
// round(W[n, k] / scale[n]) in [-127, 127] with scale[n] = max_k |W[n, k]| / 127, stored as i8
// [N, Kp]. Decoding: W'[n, k] = code[n, k] * scale[n]. Error bound: |W' - W| <= scale[n] / 2.
// NOTE: LLM.int8's outlier decomposition (input features above 6.0 multiplied in f16) is not
// implemented. It protects activations from int8 quantization, and here the activations stay f32
// and every product already runs in f32 on the decoded weight, so it would change no result.
//
// NF4 (QLoRA, Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"): blocks of
// 64 weights along a row, each with absmax a_b = max |W| over the block. A weight is stored as the
// 4-bit index of the NF4 code value nearest to W / a_b, in u8 [N, Kp / 2]. Element k of a row is
// in byte k / 2, in the low nibble when k is even and in the high nibble when k is odd.
// Decoding: W' = NF4_CODE[index] * â_b, where â_b is the double-quantized absmax below.
// Blocks lie within a row (the last one zero-padded), where bitsandbytes blocks the flattened
// tensor; for rows of a multiple of 64 weights the two coincide.
//
// Double quantization of the absmax values (as bitsandbytes' compress_statistics does it, with a
// linear 8-bit code in place of its dynamic code): mean = mean of all a_b; d_b = a_b - mean; in
// groups of 256 consecutive blocks, step_g = max |d_b| / 127 and q_b = round(d_b / step_g), i8.
// Decoding: â_b = q_b * step_g + mean. Error bound: |â_b - a_b| <= step_g / 2 (plus f32 rounding
// of the product and the sum, a few ulp of a_b).

/** Quantization formats of a frozen weight. */
export type QuantKind = "int8" | "nf4";

/** Weights per NF4 block (one absmax each). */
export const NF4_BLOCK = 64;
/** NF4 blocks per group of the double quantization (one f32 step each). */
export const ABSMAX_GROUP = 256;
/** Rows are padded to a multiple of this many weights in both formats. */
export const ROW_ALIGN = 64;

/**
 * The 16 NF4 code values, as published with QLoRA and used by bitsandbytes (4-bit NormalFloat:
 * quantiles of N(0, 1) normalised to [-1, 1], with an exact zero).
 */
export const NF4_CODE: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236328, 1.0,
];

/** Index of the NF4 code value 0 (padding). */
const NF4_ZERO = 7;

// Midpoints between neighbouring code values: index = number of midpoints below the value.
const NF4_MIDPOINTS: Float64Array = Float64Array.from(
  NF4_CODE.slice(1).map((v, i) => (v + NF4_CODE[i]) / 2),
);

/** Returns K rounded up to the padded row length of both formats. */
export function paddedRowLength(k: number): number {
  return Math.ceil(k / ROW_ALIGN) * ROW_ALIGN;
}

// Bins of [-1, 1] for nearestNf4: the index nearest to each bin's lower edge. A bin is far
// narrower than the gap between two midpoints, so at most one midpoint falls inside it.
const NF4_BINS = 4096;
const NF4_BIN_START: Uint8Array = Uint8Array.from({ length: NF4_BINS + 1 }, (_, i) =>
  nearestNf4BySearch(-1 + (2 * i) / NF4_BINS),
);

/** Returns the index of the NF4 code value nearest to `x` (x in [-1, 1]). */
export function nearestNf4(x: number): number {
  const bin = Math.min(NF4_BINS, Math.max(0, Math.floor((x + 1) * (NF4_BINS / 2))));
  let index = NF4_BIN_START[bin];
  // A table lookup, then at most one step: no data-dependent branches in the common case.
  if (index < NF4_MIDPOINTS.length && x > NF4_MIDPOINTS[index]) index++;
  return index;
}

// Binary search over the midpoints: the definition that the bin table is built from.
function nearestNf4BySearch(x: number): number {
  let lo = 0;
  let hi = NF4_MIDPOINTS.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x > NF4_MIDPOINTS[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An int8 weight: codes i8 [N, Kp] and scale f32 [N]. */
export interface Int8Weight {
  codes: Int8Array;
  scales: Float32Array;
}

/** An NF4 weight with its double-quantized absmax values. */
export interface Nf4Weight {
  /** u8 [N, Kp / 2], two 4-bit indices per byte. */
  codes: Uint8Array;
  /** i8 [N * Kp / 64]: q_b, one per block. */
  absmaxCodes: Int8Array;
  /** f32 [ceil(blocks / 256)]: step_g, one per group of 256 blocks. */
  absmaxSteps: Float32Array;
  /** Mean of the block absmax values. */
  absmaxMean: number;
}

/**
 * Returns W [N, K] row-major from `values` stored as "outIn" ([N, K]) or "inOut" ([K, N]),
 * copying only when it must transpose.
 */
function rowMajorWeight(
  values: ArrayLike<number>,
  n: number,
  k: number,
  layout: "outIn" | "inOut",
): ArrayLike<number> {
  if (values.length !== n * k) {
    throw new Error(
      `quantize: expected ${n * k} weight values for [${n}, ${k}], got ${values.length}`,
    );
  }
  if (layout === "outIn") return values;
  const out = new Float32Array(n * k);
  for (let c = 0; c < k; c++) {
    for (let r = 0; r < n; r++) out[r * k + c] = values[c * n + r];
  }
  return out;
}

/** Quantizes W [N, K] (stored in `layout`) to int8 with one absmax scale per output row. */
export function quantizeInt8(
  values: ArrayLike<number>,
  n: number,
  k: number,
  layout: "outIn" | "inOut" = "outIn",
): Int8Weight {
  const w = rowMajorWeight(values, n, k, layout);
  const kp = paddedRowLength(k);
  const codes = new Int8Array(n * kp);
  const scales = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    const row = r * k;
    let absmax = 0;
    for (let c = 0; c < k; c++) absmax = Math.max(absmax, Math.abs(w[row + c]));
    const scale = Math.fround(absmax / 127);
    scales[r] = scale;
    if (scale === 0) continue;
    for (let c = 0; c < k; c++) {
      const q = Math.round(w[row + c] / scale);
      codes[r * kp + c] = Math.max(-127, Math.min(127, q));
    }
  }
  return { codes, scales };
}

/** Quantizes W [N, K] (stored in `layout`) to NF4 with double-quantized block absmax values. */
export function quantizeNf4(
  values: ArrayLike<number>,
  n: number,
  k: number,
  layout: "outIn" | "inOut" = "outIn",
): Nf4Weight {
  const w = rowMajorWeight(values, n, k, layout);
  const kp = paddedRowLength(k);
  const blocksPerRow = kp / NF4_BLOCK;
  const codes = new Uint8Array((n * kp) / 2).fill(NF4_ZERO | (NF4_ZERO << 4));
  const absmax = new Float32Array(n * blocksPerRow);
  for (let r = 0; r < n; r++) {
    const row = r * k;
    for (let b = 0; b < blocksPerRow; b++) {
      const start = b * NF4_BLOCK;
      const end = Math.min(k, start + NF4_BLOCK);
      let a = 0;
      for (let c = start; c < end; c++) a = Math.max(a, Math.abs(w[row + c]));
      absmax[r * blocksPerRow + b] = a;
      if (a === 0) continue;
      // Whole bytes: an even element and the odd one after it (NF4_ZERO past the row's end).
      for (let c = start; c < end; c += 2) {
        const low = nearestNf4(w[row + c] / a);
        const high = c + 1 < end ? nearestNf4(w[row + c + 1] / a) : NF4_ZERO;
        codes[(r * kp + c) >> 1] = low | (high << 4);
      }
    }
  }
  return { codes, ...doubleQuantize(absmax) };
}

/** Quantizes the block absmax values: mean, then 8 bits per value with an f32 step per group. */
export function doubleQuantize(
  absmax: Float32Array,
): Pick<Nf4Weight, "absmaxCodes" | "absmaxSteps" | "absmaxMean"> {
  let sum = 0;
  for (const a of absmax) sum += a;
  const mean = absmax.length === 0 ? 0 : Math.fround(sum / absmax.length);
  const groups = Math.ceil(absmax.length / ABSMAX_GROUP);
  const absmaxCodes = new Int8Array(absmax.length);
  const absmaxSteps = new Float32Array(groups);
  for (let g = 0; g < groups; g++) {
    const start = g * ABSMAX_GROUP;
    const end = Math.min(absmax.length, start + ABSMAX_GROUP);
    let spread = 0;
    for (let b = start; b < end; b++) spread = Math.max(spread, Math.abs(absmax[b] - mean));
    const step = Math.fround(spread / 127);
    absmaxSteps[g] = step;
    if (step === 0) continue;
    for (let b = start; b < end; b++) {
      const q = Math.round((absmax[b] - mean) / step);
      absmaxCodes[b] = Math.max(-127, Math.min(127, q));
    }
  }
  return { absmaxCodes, absmaxSteps, absmaxMean: mean };
}

/** Returns â_b, the decoded absmax of block `block`, rounded as the kernels round it. */
export function decodeAbsmax(w: Nf4Weight, block: number): number {
  const step = w.absmaxSteps[Math.floor(block / ABSMAX_GROUP)];
  return Math.fround(Math.fround(w.absmaxCodes[block] * step) + w.absmaxMean);
}

/** Decodes an int8 weight to f32 W' [N, K] (row-major, padding removed). */
export function dequantizeInt8(w: Int8Weight, n: number, k: number): Float32Array {
  const kp = paddedRowLength(k);
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) out[r * k + c] = w.codes[r * kp + c] * w.scales[r];
  }
  return out;
}

/** Decodes an NF4 weight to f32 W' [N, K] (row-major, padding removed). */
export function dequantizeNf4(w: Nf4Weight, n: number, k: number): Float32Array {
  const kp = paddedRowLength(k);
  const blocksPerRow = kp / NF4_BLOCK;
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const byte = w.codes[(r * kp + c) >> 1];
      const index = c & 1 ? byte >> 4 : byte & 0xf;
      const a = decodeAbsmax(w, r * blocksPerRow + Math.floor(c / NF4_BLOCK));
      out[r * k + c] = NF4_CODE[index] * a;
    }
  }
  return out;
}

/**
 * Reference of the quantized products, in f64 from the decoded weight W' [N, K]: forward
 * y [M, N] = x [M, K] · W'^T, backward dx [M, K] = dy [M, N] · W'.
 */
export function quantizedProductRef(
  x: ArrayLike<number>,
  weight: Float32Array,
  m: number,
  n: number,
  k: number,
  backward: boolean,
): Float64Array {
  const inner = backward ? n : k;
  const cols = backward ? k : n;
  const out = new Float64Array(m * cols);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < cols; j++) {
      let sum = 0;
      for (let p = 0; p < inner; p++) {
        const w = backward ? weight[p * k + j] : weight[j * k + p];
        sum += x[i * inner + p] * w;
      }
      out[i * cols + j] = sum;
    }
  }
  return out;
}
