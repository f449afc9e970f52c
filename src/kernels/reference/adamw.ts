// Reference AdamW step written from the torch.optim.AdamW update rule, in whatever precision the
// arrays carry (tests run it in f64):
//   p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
import type { NumberArray } from "./elementwise.js";

export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The step number t, starting at 1. */
  step: number;
}

export function adamwRef(
  p: NumberArray,
  g: ArrayLike<number>,
  m: NumberArray,
  v: NumberArray,
  o: AdamWRefOptions,
): void {
  for (let i = 0; i < p.length; i++) {
    p[i] -= o.lr * o.weightDecay * p[i];
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
    const mHat = m[i] / (1 - o.beta1 ** o.step);
    const vHat = v[i] / (1 - o.beta2 ** o.step);
    p[i] -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
  }
}
