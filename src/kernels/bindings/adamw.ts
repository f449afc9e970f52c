// Binding to the AdamW kernel in wasm/adamw.ts.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

/** The scalars of one AdamW step, computed in f64 (the kernel rounds them to f32). */
export interface AdamWScalars {
  /** 1 - lr * weightDecay */
  decay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** lr / (1 - beta1^t) */
  stepSize: number;
  /** sqrt(1 - beta2^t) */
  bc2Sqrt: number;
}

/** Updates parameter p and moments m, v (n f32 each) in place from gradient g. */
export function adamwF32(
  p: number,
  g: number,
  m: number,
  v: number,
  n: number,
  s: AdamWScalars,
): void {
  const args = [p, g, m, v, n, s.decay, 1 - s.beta1, s.beta2, 1 - s.beta2, s.eps];
  getPool().run("adamwF32", [...args, s.stepSize, s.bc2Sqrt], threadsFor(n));
}
