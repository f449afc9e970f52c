// Bindings to the embedding kernels in wasm/embedding.ts.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

/** Weight dtype codes of gatherRows. */
export const EMBEDDING_DTYPE = { f32: 0, bf16: 1, f16: 2 } as const;

/** out[t, :] = w[ids[t], :] as f32; w [vocab, c]; ids i32 [n] already range-checked. */
export function gatherRows(
  w: number,
  dtype: keyof typeof EMBEDDING_DTYPE,
  ids: number,
  out: number,
  n: number,
  c: number,
): void {
  getPool().run("gatherRows", [w, EMBEDDING_DTYPE[dtype], ids, out, n, c], threadsFor(n * c));
}

/** dw[ids[t], :] += g[t, :] for every token t, in token order. */
export function scatterAddRows(g: number, ids: number, dw: number, n: number, c: number): void {
  getPool().run("scatterAddRows", [g, ids, dw, n, c], threadsFor(n * c));
}
