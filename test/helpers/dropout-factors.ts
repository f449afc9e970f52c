// The dropout factors that the wasm kernels draw, computed with the JavaScript Philox generator.
// Element i keeps its value, scaled by 1 / (1 - p), when the top 24 bits of word i % 4 of the
// block at counter + i / 4 are at least ceil(p * 2^24).
import { philox4x32, type RngStream } from "../../src/engine/random.js";

/** Returns the factors (0 or 1 / (1 - p)) of n elements drawn from `stream`. */
export function dropFactors(stream: RngStream, n: number, p: number): Float64Array {
  const factors = new Float64Array(n);
  const block = new Uint32Array(4);
  const base = stream.counterHi * 2 ** 32 + stream.counterLo;
  const threshold = Math.ceil(p * 2 ** 24);
  for (let i = 0; i < n; i++) {
    const counter = base + Math.floor(i / 4);
    const words: [number, number, number, number] = [
      counter % 2 ** 32,
      Math.floor(counter / 2 ** 32),
      0,
      0,
    ];
    philox4x32(words, [stream.key0, stream.key1], block);
    factors[i] = block[i % 4] >>> 8 >= threshold ? 1 / (1 - p) : 0;
  }
  return factors;
}
