// Initial LoRA weights, as PEFT's LoraLayer.reset_lora_parameters:
// - true: A as torch.nn.Linear's reset (kaiming_uniform_ with a = sqrt(5), which gives
//   U(-1/sqrt(in), 1/sqrt(in))), B zero, so the adapter starts as the identity;
// - "gaussian": A ~ N(0, (1/r)^2), B zero;
// - false: PEFT skips its reset, so A and B keep nn.Linear's default init. A's bound is
//   1/sqrt(in) and B's 1/sqrt(r), so B is not zero and the adapter changes outputs at once.
import type { Rng } from "../engine/random.js";
import type { InitLoraWeights } from "./config.js";
import type { LoraValues } from "./inject.js";

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
  // kaimingUniform treats shape[1] as fan_in, as torch does for an nn.Linear weight [out, in].
  const A = rng.kaimingUniform([r, inFeatures], Math.sqrt(5)).toFloat32Array();
  if (init === true) return { A, B: new Float32Array(outFeatures * r) };
  return { A, B: rng.kaimingUniform([outFeatures, r], Math.sqrt(5)).toFloat32Array() };
}
