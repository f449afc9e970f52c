// Reference activations in f64 from their definitions, and their exact derivatives.
import type { NumberArray } from "./elementwise.js";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluTanhRef(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)));
}

export function geluTanhGradRef(x: number): number {
  const u = SQRT_2_OVER_PI * (x + 0.044715 * x ** 3);
  const t = Math.tanh(u);
  const du = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
}

/**
 * erf by its Maclaurin series for |x| < 3 and by the continued fraction of erfc beyond; both
 * converge to f64 precision there (an independent method from the kernel's rational fit).
 */
export function erfRef(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    // erf(z) = 2/sqrt(pi) * sum_n (-1)^n z^(2n+1) / (n! (2n+1))
    let term = z;
    let sum = z;
    for (let n = 1; n < 100; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - erfcLargeRef(z));
}

/** erfc(z) for z >= 3: exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))). */
export function erfcLargeRef(z: number): number {
  let f = z;
  for (let k = 60; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** x * Phi(x), with the lower tail taken from erfc so it keeps its relative precision. */
export function geluErfRef(x: number): number {
  const z = x / Math.SQRT2;
  if (z < -3) return x * 0.5 * erfcLargeRef(-z);
  return 0.5 * x * (1 + erfRef(z));
}

export function geluErfGradRef(x: number): number {
  const z = x / Math.SQRT2;
  const cdf = z < -3 ? 0.5 * erfcLargeRef(-z) : 0.5 * (1 + erfRef(z));
  return cdf + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
}

export function sigmoidRef(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function siluRef(x: number): number {
  return x * sigmoidRef(x);
}

export function siluGradRef(x: number): number {
  const s = sigmoidRef(x);
  return s * (1 + x * (1 - s));
}

/** out[i] = f(x[i]). */
export function mapRef(x: ArrayLike<number>, f: (v: number) => number, out: NumberArray): void {
  for (let i = 0; i < out.length; i++) out[i] = f(x[i]);
}

/** out[i] = silu(gate[i]) * up[i]. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>, out: NumberArray): void {
  for (let i = 0; i < out.length; i++) out[i] = siluRef(gate[i]) * up[i];
}
