// RoPE inverse frequencies from a Llama-family config, including the rope scaling variants that
// change them. Computed in float64 and rounded once to float32.
import { numberOr, objectOrNull, stringOr, type RawConfig } from "./config-fields.js";

export const SUPPORTED_ROPE_TYPES = ["default", "linear", "llama3"] as const;

/**
 * Reads the RoPE settings from either spelling: transformers 5 writes
 * `rope_parameters: {rope_theta, rope_type, ...}`, older files a top-level `rope_theta` plus an
 * optional `rope_scaling: {type | rope_type, factor, ...}`.
 */
export function ropeInvFreq(raw: RawConfig, family: string, headDim: number): Float32Array {
  const parameters = objectOrNull(raw, family, "rope_parameters");
  const scaling = objectOrNull(raw, family, "rope_scaling");
  const settings: RawConfig = { ...(scaling ?? {}), ...(parameters ?? {}) };
  const theta = numberOr(
    settings,
    family,
    "rope_theta",
    numberOr(raw, family, "rope_theta", 10000),
  );
  const type = stringOr(
    settings,
    family,
    "rope_type",
    stringOr(settings, family, "type", "default"),
  );

  const base = defaultInvFreq(theta, headDim);
  switch (type) {
    case "default":
      return Float32Array.from(base);
    case "linear": {
      const factor = numberOr(settings, family, "factor", 1);
      return Float32Array.from(base, (f) => f / factor);
    }
    case "llama3":
      return Float32Array.from(llama3InvFreq(base, settings, family));
    default:
      throw new Error(
        `${family} config: rope type "${type}" is not supported yet; supported: ` +
          `${SUPPORTED_ROPE_TYPES.join(", ")}`,
      );
  }
}

/** invFreq[j] = theta^(-2j / dim) for j < dim / 2. */
function defaultInvFreq(theta: number, dim: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < dim / 2; j++) out.push(1 / theta ** ((2 * j) / dim));
  return out;
}

/**
 * Llama 3.1's scaling: long wavelengths are divided by `factor`, short ones kept, and the band
 * between low_freq_factor and high_freq_factor interpolated (transformers'
 * _compute_llama3_parameters).
 */
function llama3InvFreq(base: number[], settings: RawConfig, family: string): number[] {
  const factor = numberOr(settings, family, "factor", 8);
  const lowFreqFactor = numberOr(settings, family, "low_freq_factor", 1);
  const highFreqFactor = numberOr(settings, family, "high_freq_factor", 4);
  const contextLength = numberOr(settings, family, "original_max_position_embeddings", 8192);
  const lowFreqWavelength = contextLength / lowFreqFactor;
  const highFreqWavelength = contextLength / highFreqFactor;
  return base.map((freq) => {
    const wavelength = (2 * Math.PI) / freq;
    if (wavelength < highFreqWavelength) return freq;
    if (wavelength > lowFreqWavelength) return freq / factor;
    const smooth = (contextLength / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (freq / factor) + smooth * freq;
  });
}
