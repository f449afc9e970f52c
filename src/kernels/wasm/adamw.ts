// One AdamW step over a flat f32 parameter, with the operation order of PyTorch's single-tensor
// AdamW (torch/optim/adamw.py, torch 2.x) so results stay within float32 rounding of it:
//   p *= 1 - lr * wd
//   m = lerp(m, g, 1 - b1)               (m + (1 - b1) (g - m))
//   v = v * b2 + (1 - b2) * g * g
//   p += -stepSize * (m / (sqrt(v) / bc2Sqrt + eps)),  stepSize = lr / (1 - b1^t)
// Elementwise and split by ranges, so results do not depend on the thread count.
import { partStart, partEnd } from "./split";

/**
 * Updates p, m and v (all [n] f32) in place from gradient g. decay = 1 - lr * weightDecay,
 * oneMinusB1 = 1 - b1, oneMinusB2 = 1 - b2, stepSize = lr / (1 - b1^t) and
 * bc2Sqrt = sqrt(1 - b2^t) are computed by the caller in f64 and rounded to f32 here.
 */
export function adamwF32(
  p: usize,
  g: usize,
  m: usize,
  v: usize,
  n: i32,
  decay: f64,
  oneMinusB1: f64,
  b2: f64,
  oneMinusB2: f64,
  eps: f64,
  stepSize: f64,
  bc2Sqrt: f64,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  const decayV = f32x4.splat(<f32>decay);
  const w1 = f32x4.splat(<f32>oneMinusB1);
  const b2V = f32x4.splat(<f32>b2);
  const w2 = f32x4.splat(<f32>oneMinusB2);
  const epsV = f32x4.splat(<f32>eps);
  const negStep = f32x4.splat(-<f32>stepSize);
  const bc2V = f32x4.splat(<f32>bc2Sqrt);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    const gv = v128.load(g + o);
    let mv = v128.load(m + o);
    mv = f32x4.add(mv, f32x4.mul(w1, f32x4.sub(gv, mv)));
    let vv = f32x4.mul(v128.load(v + o), b2V);
    vv = f32x4.add(vv, f32x4.mul(f32x4.mul(w2, gv), gv));
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vv), bc2V), epsV);
    const pv = f32x4.mul(v128.load(p + o), decayV);
    v128.store(p + o, f32x4.add(pv, f32x4.mul(negStep, f32x4.div(mv, denom))));
    v128.store(m + o, mv);
    v128.store(v + o, vv);
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    const gs = load<f32>(g + o);
    let ms = load<f32>(m + o);
    ms = ms + <f32>oneMinusB1 * (gs - ms);
    let vs = load<f32>(v + o) * <f32>b2;
    vs = vs + <f32>oneMinusB2 * gs * gs;
    const denom = Mathf.sqrt(vs) / <f32>bc2Sqrt + <f32>eps;
    const ps = load<f32>(p + o) * <f32>decay;
    store<f32>(p + o, ps + -<f32>stepSize * (ms / denom));
    store<f32>(m + o, ms);
    store<f32>(v + o, vs);
  }
}
