// Initial LoRA weights, as PEFT's LoraLayer.reset_lora_parameters:
// - true: A as torch.nn.Linear's reset (kaiming_uniform_ with a = sqrt(5), which gives
//   U(-1/sqrt(in), 1/sqrt(in))), B zero, so the adapter starts as the identity;
// - "gaussian": A ~ N(0, (1/r)^2), B zero;
// - false: PEFT skips its reset, so A and B keep nn.Linear's default init: A bound 1/sqrt(in)
//   and B bound 1/sqrt(r) (B is not zero; the adapter changes the outputs from the start).
import type { Rng } from "../engine/random.js";
import type { InitLoraWeights } from "./config.js";
import type { LoraValues } from "./inject.js";

/** torch.nn.init.kaiming_uniform_ bound for a [out, fanIn] weight: gain · sqrt(3 / fanIn). */
export function kaimingUniformBound(fanIn: number, a = Math.sqrt(5)): number {
  const gain = Math.sqrt(2 / (1 + a * a));
  return gain * Math.sqrt(3 / fanIn);
}

function uniform(rng: Rng, shape: [number, number], bound: number): Float32Array {
  return rng.uniform(shape, -bound, bound).toFloat32Array();
}

/** Returns initial lora_A [r, in] and lora_B [out, r] values for one Linear. */
export function initLoraMatrices(
  r: number,
  inFeatures: number,
  outFeatures: number,
  init: InitLoraWeights,
  rng: Rng | undefined,
): LoraValues {
  if (rng === undefined) {
    throw new Error(
      `applyLora: initialising lora_A needs a random generator; pass { rng: new Rng(seed) }`,
    );
  }
  if (init === "gaussian") {
    return {
      A: rng.normal([r, inFeatures], 0, 1 / r).toFloat32Array(),
      B: new Float32Array(outFeatures * r),
    };
  }
  const A = uniform(rng, [r, inFeatures], kaimingUniformBound(inFeatures));
  if (init === true) return { A, B: new Float32Array(outFeatures * r) };
  return { A, B: uniform(rng, [outFeatures, r], kaimingUniformBound(r)) };
}
