// Reference dropout: the mask drawn word by word through engine/random.ts's Philox function.
import { streamWord, type RngStream } from "../../engine/random.js";
import type { NumberArray } from "./elementwise.js";

/** out[i] = x[i] * (1 / (1 - p) when element i is kept, else 0), kept when u_i >= p. */
export function dropoutRef(
  x: ArrayLike<number>,
  p: number,
  stream: RngStream,
  out: NumberArray,
): void {
  const scale = Math.fround(1 / (1 - p));
  const scratch = new Uint32Array(4);
  for (let i = 0; i < out.length; i++) {
    const u = (streamWord(stream, i, scratch) >>> 8) / 16777216;
    out[i] = x[i] * (u >= p ? scale : 0);
  }
}
