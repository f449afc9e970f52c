import assert from "node:assert/strict";
import { test } from "node:test";
import { add, backward, mul, sub, Tensor } from "../../src/engine/index.js";
import {
  broadcastBinaryRef,
  broadcastShapeRef,
  reduceToShapeRef,
} from "../../src/kernels/reference/elementwise.js";
import { assertClose } from "../helpers/assert.js";
import { makeRandom, randomArray } from "../helpers/random.js";

// Random shape pairs: each dimension of each operand is either the output's size, 1, or absent
// (leading), which reaches the same-shape, row, scalar and strided kernels and their gradients.
function randomPair(next: () => number): [number[], number[]] {
  const rank = 1 + Math.floor(next() * 4);
  const out = Array.from({ length: rank }, () => [1, 2, 3, 5, 17][Math.floor(next() * 5)]);
  const operand = (): number[] => {
    const drop = Math.floor(next() * rank);
    return out.slice(drop).map((d) => (next() < 0.35 ? 1 : d));
  };
  return [operand(), operand()];
}

const OPS = { add, sub, mul } as const;

test("broadcast kernels match reference on random shapes", () => {
  const next = makeRandom(2024);
  for (let trial = 0; trial < 200; trial++) {
    const [aShape, bShape] = randomPair(next);
    const outShape = broadcastShapeRef(aShape, bShape);
    const size = (s: number[]): number => s.reduce((p, d) => p * d, 1);
    const a = randomArray(size(aShape), 2 * trial + 1);
    const b = randomArray(size(bShape), 2 * trial + 2);
    const g = randomArray(size(outShape), 7 * trial + 3);
    for (const name of ["add", "sub", "mul"] as const) {
      const what = `${name} ${JSON.stringify(aShape)} ${JSON.stringify(bShape)}`;
      const expected = new Float32Array(size(outShape));
      broadcastBinaryRef(name, a, aShape, b, bShape, expected);
      const opts = { persistent: true, requiresGrad: true };
      const ta = Tensor.from(a, aShape, "f32", opts);
      const tb = Tensor.from(b, bShape, "f32", opts);
      const out = OPS[name](ta, tb);
      assert.deepEqual(out.shape, outShape, what);
      assert.deepEqual(out.f32(), expected, what);

      // Gradients: g (times the other operand for mul) reduced onto each input's shape, in f64.
      backward(out, Tensor.from(g, outShape));
      const ga = Float64Array.from(g);
      const gb = Float64Array.from(g);
      if (name === "mul") {
        broadcastBinaryRef("mul", g, outShape, b, bShape, ga);
        broadcastBinaryRef("mul", g, outShape, a, aShape, gb);
      }
      if (name === "sub") gb.forEach((v, i) => (gb[i] = -v));
      const expectA = new Float64Array(ta.size);
      const expectB = new Float64Array(tb.size);
      reduceToShapeRef(ga, outShape, expectA, aShape);
      reduceToShapeRef(gb, outShape, expectB, bShape);
      assertClose(ta.grad?.f32() ?? [], expectA, { atol: 1e-5, rtol: 1e-5, what: `${what} da` });
      assertClose(tb.grad?.f32() ?? [], expectB, { atol: 1e-5, rtol: 1e-5, what: `${what} db` });
      ta.dispose();
      tb.dispose();
    }
  }
});
