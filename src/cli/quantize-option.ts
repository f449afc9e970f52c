// The --quantize option shared by train, eval, generate, info and merge.
import type { OptionSpec } from "./train-options.js";

export const QUANTIZE_OPTION: OptionSpec = {
  name: "quantize",
  type: "string",
  value: "<format>",
  default: "none",
  choices: ["none", "int8", "nf4"],
  help:
    "Quantize the Linear weights of the transformer blocks while loading: int8 (absmax per " +
    "row) or nf4 (4-bit NormalFloat, 64-weight blocks). Embeddings, norms and the output " +
    "layer keep their dtype.",
};
