// Rotary position embedding (RoPE) in the Hugging Face rotate-half layout, with partial rotary.
// Shapes: x [B, H, T, D], positions [B, T] or [T].
import { ropeF32 } from "../../kernels/bindings/rope.js";
import { record } from "../tape.js";
import { formatShape, Tensor } from "../tensor.js";
import { expectDtype, expectRank } from "./check.js";

/**
 * Returns x with the first rotaryDim features of each head rotated: for j < rotaryDim / 2,
 * out[j] = x[j] cos a - x[j + half] sin a and out[j + half] = x[j + half] cos a + x[j] sin a with
 * a = pos * invFreq[j], which is transformers' x * cos + rotate_half(x) * sin. Features from
 * rotaryDim on pass through. positions: i32 [B, T], [1, T] or [T]. The angle is rounded to f32
 * before cos and sin, as transformers computes it in float32.
 */
export function rope(
  x: Tensor,
  positions: Tensor,
  invFreq: Float32Array,
  rotaryDim?: number,
): Tensor {
  expectDtype("rope", "x", x, "f32");
  expectRank("rope", "x [B, H, T, D]", x, 4);
  expectDtype("rope", "positions", positions, "i32");
  const [B, H, T, D] = x.shape;
  const rot = rotaryDim ?? D;
  if (!Number.isInteger(rot) || rot < 2 || rot % 2 !== 0 || rot > D) {
    throw new Error(`rope: rotaryDim must be an even number from 2 to D = ${D}, got ${rot}`);
  }
  if (invFreq.length !== rot / 2) {
    throw new Error(
      `rope: invFreq must have rotaryDim / 2 = ${rot / 2} values, got ${invFreq.length}`,
    );
  }
  const perBatch = checkPositions(positions, B, T);

  const tables = angleTables(positions.i32(), invFreq, perBatch ? B : 1, T);
  const dims = { B, H, T, D, rotaryDim: rot, perBatch };
  const out = Tensor.empty(x.shape);
  if (out.size > 0)
    ropeF32(x.offset, out.offset, tables.cos.offset, tables.sin.offset, dims, false);

  return record(
    out,
    "rope",
    [x],
    (gradOut) => {
      const dx = Tensor.empty(x.shape);
      if (dx.size > 0) {
        ropeF32(gradOut.offset, dx.offset, tables.cos.offset, tables.sin.offset, dims, true);
      }
      return [dx];
    },
    [tables.cos, tables.sin],
  );
}

/** Returns true for per-batch positions [B, T], false for shared ones [T] or [1, T]. */
function checkPositions(positions: Tensor, B: number, T: number): boolean {
  const s = positions.shape;
  if (s.length === 1 && s[0] === T) return false;
  if (s.length === 2 && s[1] === T && (s[0] === B || s[0] === 1)) return s[0] === B && B !== 1;
  throw new Error(
    `rope: positions must be [B, T] = [${B}, ${T}], [1, ${T}] or [${T}], got ${formatShape(s)}`,
  );
}

/** Builds cos and sin tables [Bt, T, half] of angle = f32(pos * invFreq[j]). */
function angleTables(
  positions: Int32Array,
  invFreq: Float32Array,
  Bt: number,
  T: number,
): { cos: Tensor; sin: Tensor } {
  const half = invFreq.length;
  const cos = Tensor.empty([Bt, T, half]);
  const sin = Tensor.empty([Bt, T, half]);
  const c = cos.f32();
  const s = sin.f32();
  for (let i = 0; i < Bt * T; i++) {
    const pos = Math.fround(positions[i]);
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos * invFreq[j]);
      c[i * half + j] = Math.cos(angle);
      s[i * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
