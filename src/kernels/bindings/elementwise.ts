// Bindings to the elementwise kernels in wasm/elementwise.ts. Arguments are byte offsets into the
// shared memory and element counts; callers check shapes and dtypes.
import { getPool } from "../pool.js";

/** out = a + b over n f32 elements (out may alias a or b). */
export function addF32(a: number, b: number, out: number, n: number): void {
  getPool().run("addF32", [a, b, out, n]);
}
