// Reference rotary embedding (Hugging Face rotate-half layout): plain f64 loops, the oracle for
// wasm/rope.ts. x [B, H, T, D]; positions [B, T] (perBatch) or [T].

export interface RopeRefOptions {
  B: number;
  H: number;
  T: number;
  D: number;
  rotaryDim: number;
  perBatch: boolean;
}

/**
 * Returns x rotated by angle(pos, j) = pos * invFreq[j], rounded to f32 as transformers computes
 * it, or by -angle when inverse. Features from rotaryDim on are copied.
 */
export function ropeRef(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  invFreq: ArrayLike<number>,
  o: RopeRefOptions,
  inverse = false,
): Float64Array {
  const { B, H, T, D, rotaryDim } = o;
  const half = rotaryDim / 2;
  const out = new Float64Array(B * H * T * D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const pos = positions[o.perBatch ? b * T + t : t];
        const base = ((b * H + h) * T + t) * D;
        for (let j = 0; j < half; j++) {
          const angle = Math.fround(Math.fround(pos) * invFreq[j]);
          const c = Math.cos(angle);
          const s = inverse ? -Math.sin(angle) : Math.sin(angle);
          const x1 = x[base + j];
          const x2 = x[base + j + half];
          out[base + j] = x1 * c - x2 * s;
          out[base + j + half] = x2 * c + x1 * s;
        }
        for (let j = rotaryDim; j < D; j++) out[base + j] = x[base + j];
      }
    }
  }
  return out;
}
