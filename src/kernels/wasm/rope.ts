// Rotary position embedding in the Hugging Face rotate-half layout: within the first rotaryDim
// features of a head, feature j pairs with feature j + rotaryDim / 2, and the pair turns by the
// angle of (position, j). Shapes: x and out [B, H, T, D]; cos and sin [Bt, T, rotaryDim / 2] with
// Bt = B (positions per batch row) or 1 (shared positions). Features from rotaryDim on are copied.
import { partEnd, partStart } from "./split";

/**
 * out = rope(x). x, out, cos, sin: f32 offsets; out may alias x. perBatch: 1 when the tables
 * have one block per batch row, 0 when all rows share one. inverse: 1 rotates by -angle, which
 * is the backward pass (the rotation is orthogonal, so its transpose is its inverse).
 */
export function ropeF32(
  x: usize,
  out: usize,
  cos: usize,
  sin: usize,
  B: i32,
  H: i32,
  T: i32,
  D: i32,
  rotaryDim: i32,
  perBatch: i32,
  inverse: i32,
  tid: i32,
  nt: i32,
): void {
  const rows = B * H * T;
  const half = rotaryDim >> 1;
  const start = partStart(rows, 1, tid, nt);
  const end = partEnd(rows, 1, tid, nt);
  const rowBytes = (<usize>D) << 2;
  const halfBytes = (<usize>half) << 2;
  const sign: f32 = inverse ? -1 : 1;
  const vsign = f32x4.splat(sign);
  for (let r = start; r < end; r++) {
    const t = r % T;
    const b = r / (H * T);
    const tableRow: i32 = perBatch ? b * T + t : t;
    const table = <usize>tableRow * halfBytes;
    const c = cos + table;
    const sn = sin + table;
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * rowBytes;
    let j = 0;
    for (; j + 4 <= half; j += 4) {
      const o = (<usize>j) << 2;
      const vc = v128.load(c + o);
      const vs = f32x4.mul(v128.load(sn + o), vsign);
      const x1 = v128.load(xr + o);
      const x2 = v128.load(xr + halfBytes + o);
      v128.store(or + o, f32x4.sub(f32x4.mul(x1, vc), f32x4.mul(x2, vs)));
      v128.store(or + halfBytes + o, f32x4.add(f32x4.mul(x2, vc), f32x4.mul(x1, vs)));
    }
    for (; j < half; j++) {
      const o = (<usize>j) << 2;
      const cj = load<f32>(c + o);
      const sj = load<f32>(sn + o) * sign;
      const x1 = load<f32>(xr + o);
      const x2 = load<f32>(xr + halfBytes + o);
      store<f32>(or + o, x1 * cj - x2 * sj);
      store<f32>(or + halfBytes + o, x2 * cj + x1 * sj);
    }
    if (or != xr && rotaryDim < D) {
      const done = (<usize>rotaryDim) << 2;
      memory.copy(or + done, xr + done, rowBytes - done);
    }
  }
}
