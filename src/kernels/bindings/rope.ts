// Binding to the rotary embedding kernel in wasm/rope.ts. Arguments are byte offsets into the
// shared memory and sizes; callers check shapes and build the cos/sin tables.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

/**
 * out = rope(x) for x [B, H, T, D] with cos and sin tables [Bt, T, rotaryDim / 2], Bt = B when
 * perBatch, else 1. inverse rotates by -angle (the backward pass). out may alias x.
 */
export function ropeF32(
  x: number,
  out: number,
  cos: number,
  sin: number,
  dims: { B: number; H: number; T: number; D: number; rotaryDim: number; perBatch: boolean },
  inverse: boolean,
): void {
  const { B, H, T, D, rotaryDim, perBatch } = dims;
  getPool().run(
    "ropeF32",
    [x, out, cos, sin, B, H, T, D, rotaryDim, perBatch ? 1 : 0, inverse ? 1 : 0],
    threadsFor(B * H * T * D),
  );
}
