// Bindings to the activation kernels in wasm/activation.ts. All arrays are f32 with n elements.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

export type GeluApproximate = "tanh" | "none";

export function geluF32(approximate: GeluApproximate, x: number, out: number, n: number): void {
  const kernel = approximate === "tanh" ? "geluTanhF32" : "geluErfF32";
  getPool().run(kernel, [x, out, n], threadsFor(n));
}

export function geluBackwardF32(
  approximate: GeluApproximate,
  x: number,
  g: number,
  dx: number,
  n: number,
): void {
  const kernel = approximate === "tanh" ? "geluTanhBackwardF32" : "geluErfBackwardF32";
  getPool().run(kernel, [x, g, dx, n], threadsFor(n));
}

export function siluF32(x: number, out: number, n: number): void {
  getPool().run("siluF32", [x, out, n], threadsFor(n));
}

export function siluBackwardF32(x: number, g: number, dx: number, n: number): void {
  getPool().run("siluBackwardF32", [x, g, dx, n], threadsFor(n));
}

export function swigluF32(gate: number, up: number, out: number, n: number): void {
  getPool().run("swigluF32", [gate, up, out, n], threadsFor(n));
}

/** dgate = g * up * silu'(gate), dup = g * silu(gate); 0 skips an output. */
export function swigluBackwardF32(
  gate: number,
  up: number,
  g: number,
  grads: { dgate: number; dup: number },
  n: number,
): void {
  const args = [gate, up, g, grads.dgate, grads.dup, n];
  getPool().run("swigluBackwardF32", args, threadsFor(n));
}
