// Argument checks shared by the ops. Errors name the op, the argument, what was expected and
// what arrived.
import { formatShape, type DType, type Tensor } from "../tensor.js";

export function expectDtype(op: string, arg: string, t: Tensor, ...dtypes: DType[]): void {
  t.assertAlive(op);
  if (!dtypes.includes(t.dtype)) {
    throw new Error(`${op}: ${arg} must be ${dtypes.join(" or ")}, got ${t.describe()}`);
  }
}

export function expectSameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(
      `${op}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not match`,
    );
  }
}

export function expectRank(op: string, arg: string, t: Tensor, ...ranks: number[]): void {
  if (!ranks.includes(t.ndim)) {
    throw new Error(
      `${op}: ${arg} must have ${ranks.join(" or ")} dimensions, got ${formatShape(t.shape)}`,
    );
  }
}
