// Elementwise addition of two tensors of the same shape.
import { addF32 } from "../../kernels/bindings/elementwise.js";
import { record, setAccumulate } from "../tape.js";
import { Tensor } from "../tensor.js";
import { expectDtype, expectSameShape } from "./check.js";

/** Returns a + b. Both f32 with equal shapes. */
export function addSame(a: Tensor, b: Tensor): Tensor {
  expectDtype("add", "a", a, "f32");
  expectDtype("add", "b", b, "f32");
  expectSameShape("add", a, b);
  const out = Tensor.empty(a.shape);
  addF32(a.offset, b.offset, out.offset, a.size);
  return record(out, "add", [a, b], (g) => [g, g]);
}

setAccumulate((target, g) => addF32(target.offset, g.offset, target.offset, target.size));
