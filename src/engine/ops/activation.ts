// Activations: GELU (tanh and erf forms), SiLU and SwiGLU, with their gradients.
import {
  geluBackwardF32,
  geluF32,
  siluBackwardF32,
  siluF32,
  swigluBackwardF32,
  swigluF32,
  type GeluApproximate,
} from "../../kernels/bindings/activation.js";
import { record } from "../tape.js";
import { Tensor } from "../tensor.js";
import { expectDtype, expectSameShape } from "./check.js";

/**
 * Returns GELU(x). With approximate "tanh" it is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
 * GPT-2's gelu_new. With "none" it is x * Phi(x) with the normal CDF, torch's default form.
 */
export function gelu(x: Tensor, approximate: GeluApproximate = "tanh"): Tensor {
  expectDtype("gelu", "x", x, "f32");
  if (approximate !== "tanh" && approximate !== "none") {
    throw new Error(
      `gelu: approximate must be "tanh" or "none", got ${JSON.stringify(approximate)}`,
    );
  }
  const out = Tensor.empty(x.shape);
  geluF32(approximate, x.offset, out.offset, x.size);
  return record(
    out,
    "gelu",
    [x],
    (g, _needs, reusable) => {
      const dx = reusable ? g : Tensor.empty(x.shape);
      geluBackwardF32(approximate, x.offset, g.offset, dx.offset, x.size);
      return [dx];
    },
    [x],
  );
}

/** Returns SiLU(x) = x * sigmoid(x). */
export function silu(x: Tensor): Tensor {
  expectDtype("silu", "x", x, "f32");
  const out = Tensor.empty(x.shape);
  siluF32(x.offset, out.offset, x.size);
  return record(
    out,
    "silu",
    [x],
    (g, _needs, reusable) => {
      const dx = reusable ? g : Tensor.empty(x.shape);
      siluBackwardF32(x.offset, g.offset, dx.offset, x.size);
      return [dx];
    },
    [x],
  );
}

/** Returns silu(gate) * up (Llama's MLP); gate and up have the same shape. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  expectDtype("swiglu", "gate", gate, "f32");
  expectDtype("swiglu", "up", up, "f32");
  expectSameShape("swiglu", gate, up);
  const out = Tensor.empty(gate.shape);
  swigluF32(gate.offset, up.offset, out.offset, gate.size);
  return record(
    out,
    "swiglu",
    [gate, up],
    (g, needs, reusable) => {
      // The kernel reads each element of g before it writes that element's gradients, so dgate
      // may take g's memory.
      let dgate: Tensor | null = null;
      if (needs[0]) dgate = reusable ? g : Tensor.empty(gate.shape);
      const dup = needs[1] ? Tensor.empty(up.shape) : null;
      const grads = { dgate: dgate?.offset ?? 0, dup: dup?.offset ?? 0 };
      swigluBackwardF32(gate.offset, up.offset, g.offset, grads, gate.size);
      return [dgate, dup];
    },
    [gate, up],
  );
}
