// Binding to the dropout kernel in wasm/dropout.ts.
import type { RngStream } from "../../engine/random.js";
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

/**
 * out = x * mask / (1 - p) over n f32 elements, where the mask comes from `stream`. The same
 * stream applied to the gradient gives the backward pass.
 */
export function dropoutF32(x: number, out: number, n: number, p: number, stream: RngStream): void {
  // Keep element i when (word >>> 8) / 2^24 >= p, the same test as an integer comparison.
  const threshold = Math.ceil(p * 16777216);
  const scale = 1 / (1 - p);
  const args = [x, out, n, threshold, scale, stream.key0, stream.key1];
  getPool().run("dropoutF32", [...args, stream.counterLo, stream.counterHi], threadsFor(n));
}
