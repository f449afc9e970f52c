// Elementwise arithmetic with numpy broadcasting (add, sub, mul), scaling, and full sums.
// Backward passes fold each gradient back onto its input's shape (reduceToShape).
import { addF32, BinaryOp, scaleF32 } from "../../kernels/bindings/elementwise.js";
import { sumF32 } from "../../kernels/bindings/reduce.js";
import { record, setAccumulate } from "../tape.js";
import { Tensor } from "../tensor.js";
import { broadcastBinary, reduceToShape } from "./broadcast.js";
import { expectDtype, expectSameShape } from "./check.js";

/** Returns a copy of g; used where one gradient tensor would otherwise serve two inputs. */
function copyOf(g: Tensor): Tensor {
  const out = Tensor.empty(g.shape);
  out.f32().set(g.f32());
  return out;
}

function expectF32Pair(op: string, a: Tensor, b: Tensor): void {
  expectDtype(op, "a", a, "f32");
  expectDtype(op, "b", b, "f32");
}

/** Returns a + b with numpy broadcasting. */
export function add(a: Tensor, b: Tensor): Tensor {
  expectF32Pair("add", a, b);
  const out = broadcastBinary("add", BinaryOp.Add, a, b);
  return record(
    out,
    "add",
    [a, b],
    (g, needs) => {
      const ga = needs[0] ? reduceToShape(g, a.shape) : null;
      let gb = needs[1] ? reduceToShape(g, b.shape) : null;
      // The tape adds later gradients into these tensors in place, so two inputs must never share one.
      if (ga !== null && gb !== null && gb.offset === ga.offset) gb = copyOf(gb);
      return [ga, gb];
    },
    [],
  );
}

/** Returns a - b with numpy broadcasting. */
export function sub(a: Tensor, b: Tensor): Tensor {
  expectF32Pair("sub", a, b);
  const out = broadcastBinary("sub", BinaryOp.Sub, a, b);
  return record(
    out,
    "sub",
    [a, b],
    (g, needs) => {
      const ga = needs[0] ? reduceToShape(g, a.shape) : null;
      const gb = needs[1] ? scaleRaw(reduceToShape(g, b.shape), -1) : null;
      return [ga, gb];
    },
    [],
  );
}

/** Returns a * b (elementwise) with numpy broadcasting. */
export function mul(a: Tensor, b: Tensor): Tensor {
  expectF32Pair("mul", a, b);
  const out = broadcastBinary("mul", BinaryOp.Mul, a, b);
  return record(
    out,
    "mul",
    [a, b],
    (g, needs) => {
      const ga = needs[0]
        ? reduceToShape(broadcastBinary("mul", BinaryOp.Mul, g, b), a.shape)
        : null;
      const gb = needs[1]
        ? reduceToShape(broadcastBinary("mul", BinaryOp.Mul, g, a), b.shape)
        : null;
      return [ga, gb];
    },
    [a.needsGrad ? b : null, b.needsGrad ? a : null],
  );
}

function scaleRaw(a: Tensor, s: number): Tensor {
  const out = Tensor.empty(a.shape);
  scaleF32(a.offset, out.offset, a.size, s);
  return out;
}

/** Returns a * s for a number s (rounded to f32, as a multiply in f32 would). */
export function scale(a: Tensor, s: number): Tensor {
  expectDtype("scale", "a", a, "f32");
  if (!Number.isFinite(s)) {
    throw new Error(`scale: factor must be a finite number, got ${s}`);
  }
  const out = scaleRaw(a, s);
  return record(out, "scale", [a], (g) => [scaleRaw(g, s)], []);
}

function fillLike(shape: readonly number[], value: number): Tensor {
  const out = Tensor.empty(shape);
  out.f32().fill(value);
  return out;
}

/** Returns the sum of all elements as a [1] tensor, accumulated in f64 and rounded to f32. */
export function sum(a: Tensor): Tensor {
  expectDtype("sum", "a", a, "f32");
  const out = Tensor.from([sumF32(a.offset, a.size)], [1]);
  return record(out, "sum", [a], (g) => [fillLike(a.shape, g.f32()[0])], []);
}

/** Returns the mean of all elements as a [1] tensor (NaN for an empty tensor, as torch gives). */
export function mean(a: Tensor): Tensor {
  expectDtype("mean", "a", a, "f32");
  const n = a.size;
  const out = Tensor.from([sumF32(a.offset, n) / n], [1]);
  return record(out, "mean", [a], (g) => [fillLike(a.shape, g.f32()[0] / n)], []);
}

/** Returns a + b for f32 tensors of equal shape; unlike add it rejects broadcasting. */
export function addSame(a: Tensor, b: Tensor): Tensor {
  expectF32Pair("addSame", a, b);
  expectSameShape("addSame", a, b);
  return add(a, b);
}

// Gradient accumulation in backward() runs on the SIMD add kernel.
setAccumulate((target, g) => addF32(target.offset, g.offset, target.offset, target.size));
