// RMSNorm and LayerNorm over the last dimension (C), computed in f32. Per-row statistics from
// the forward pass are kept for the backward pass. Weights may be f32, bf16 or f16; only f32
// weights can receive gradients.
import {
  layerNormBackwardF32,
  layerNormF32,
  normParamGradF32,
  rmsNormBackwardF32,
  rmsNormF32,
} from "../../kernels/bindings/norm.js";
import { record } from "../tape.js";
import { Tensor, formatShape } from "../tensor.js";
import { expectDtype } from "./check.js";

/** Returns `t` as f32: itself when it already is, else an upcast copy (exact for bf16 and f16). */
function asF32(t: Tensor): Tensor {
  return t.dtype === "f32" ? t : Tensor.from(t.toFloat32Array(), t.shape);
}

function checkParam(op: string, arg: string, p: Tensor, x: Tensor): void {
  expectDtype(op, arg, p, "f32", "bf16", "f16");
  const c = x.shape[x.ndim - 1];
  if (p.size !== c || p.ndim !== 1) {
    throw new Error(
      `${op}: ${arg} must have shape [${c}] to match the last dimension of x ${formatShape(x.shape)}, ` +
        `got ${formatShape(p.shape)}`,
    );
  }
  if (p.dtype !== "f32" && p.needsGrad) {
    throw new Error(`${op}: ${arg} ${p.describe()} requires a gradient but is not f32`);
  }
}

function checkInput(op: string, x: Tensor, eps: number): { rows: number; c: number } {
  expectDtype(op, "x", x, "f32");
  if (x.ndim < 1) throw new Error(`${op}: x must have at least one dimension, got []`);
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new Error(`${op}: eps must be a finite number >= 0, got ${eps}`);
  }
  const c = x.shape[x.ndim - 1];
  return { rows: c === 0 ? 0 : x.size / c, c };
}

/** Returns x / sqrt(mean(x^2) + eps) * weight over the last dimension (Llama's RMSNorm). */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const dims = checkInput("rmsNorm", x, eps);
  checkParam("rmsNorm", "weight", weight, x);
  const w = asF32(weight);
  const out = Tensor.empty(x.shape);
  const rstd = Tensor.empty([dims.rows]);
  rmsNormF32(x.offset, w.offset, out.offset, rstd.offset, dims, eps);
  return record(
    out,
    "rmsNorm",
    [x, weight],
    (g, needs) => {
      let dx: Tensor | null = null;
      let dw: Tensor | null = null;
      if (needs[0]) {
        dx = Tensor.empty(x.shape);
        rmsNormBackwardF32(x.offset, w.offset, g.offset, rstd.offset, dx.offset, dims);
      }
      if (needs[1]) {
        dw = Tensor.empty(weight.shape);
        normParamGradF32(x.offset, g.offset, { mean: 0, rstd: rstd.offset }, dw.offset, 0, dims);
      }
      return [dx, dw];
    },
    [x, w, rstd],
  );
}

/**
 * Returns (x - mean) / sqrt(var + eps) * weight + bias over the last dimension, with the biased
 * variance as torch.nn.LayerNorm uses. `bias` may be null.
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number): Tensor {
  const dims = checkInput("layerNorm", x, eps);
  checkParam("layerNorm", "weight", weight, x);
  if (bias !== null) checkParam("layerNorm", "bias", bias, x);
  const w = asF32(weight);
  const b = bias === null ? null : asF32(bias);
  const out = Tensor.empty(x.shape);
  const mean = Tensor.empty([dims.rows]);
  const rstd = Tensor.empty([dims.rows]);
  const stats = { mean: mean.offset, rstd: rstd.offset };
  layerNormF32(x.offset, w.offset, b?.offset ?? 0, out.offset, stats, dims, eps);
  const inputs = bias === null ? [x, weight] : [x, weight, bias];
  return record(
    out,
    "layerNorm",
    inputs,
    (g, needs) => {
      let dx: Tensor | null = null;
      if (needs[0]) {
        dx = Tensor.empty(x.shape);
        layerNormBackwardF32(x.offset, w.offset, g.offset, stats, dx.offset, dims);
      }
      const dw = needs[1] ? Tensor.empty(weight.shape) : null;
      const db = needs[2] && bias !== null ? Tensor.empty(bias.shape) : null;
      if (dw !== null || db !== null) {
        // The kernel writes both sums in one pass, so an unneeded weight gradient goes to a scratch tensor.
        const dwOut = dw ?? Tensor.empty(weight.shape);
        normParamGradF32(x.offset, g.offset, stats, dwOut.offset, db?.offset ?? 0, dims);
      }
      return bias === null ? [dx, dw] : [dx, dw, db];
    },
    [x, w, mean, rstd],
  );
}
