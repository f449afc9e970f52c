// `tslora merge`: merges a LoRA adapter into its base model and writes a checkpoint folder that
// transformers and tslora load like the base model.
import { resolve } from "node:path";
import { resolveModelDir } from "../io/hub.js";
import { mergeCheckpoint } from "../lora/merge-checkpoint.js";
import { parseQuantizeOption } from "../engine/quant.js";
import { QUANTIZE_OPTION } from "./quantize-option.js";
import { applyRunQuantize, readRunConfig, warnMergeQuantizeMismatch } from "./run-config.js";
import { formatHelp, parseCommandLine, type OptionSpec } from "./train-options.js";

const USAGE =
  "tslora merge --model <dir|id> --adapter <dir> --out <dir> [--quantize int8|nf4] [--force]";
const SUMMARY =
  "Merges a LoRA adapter into the base weights (in f32, stored back in the base dtype) and " +
  "writes config, generation config, tokenizer files and safetensors to a new folder.";

const MERGE_OPTIONS: OptionSpec[] = [
  {
    name: "model",
    type: "string",
    value: "<dir|id>",
    required: true,
    help: "Base model folder or Hub id (owner/name[@revision]).",
  },
  {
    name: "adapter",
    type: "string",
    value: "<dir>",
    required: true,
    help: "PEFT adapter folder (adapter_config.json and adapter_model.safetensors).",
  },
  {
    name: "out",
    type: "string",
    value: "<dir>",
    required: true,
    help: "Output folder for the merged checkpoint. It must not exist or must be empty.",
  },
  {
    name: "force",
    type: "boolean",
    default: false,
    help: "Replace a non-empty output folder.",
  },
  {
    ...QUANTIZE_OPTION,
    help:
      "The quantization the adapter was trained with (train --quantize). The block Linear " +
      "weights are quantized and decoded before merging, so the output is the base the adapter " +
      "saw, stored in the checkpoint's dtype. When --adapter holds a `tslora train` run's " +
      "train_config.json (in the folder, or two levels up for a checkpoints/step-N folder), the " +
      "run's format is the default, and another given value gets a warning.",
  },
];

/** Runs `tslora merge` with the arguments after the verb; resolves to the exit status. */
export async function runMerge(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine("merge", argv, MERGE_OPTIONS);
  if (parsed === null) {
    console.log(formatHelp(USAGE, SUMMARY, MERGE_OPTIONS));
    return 0;
  }
  const { values, given } = parsed;
  const adapterDir = resolve(String(values.adapter));
  const warn = (message: string) => process.stderr.write(`tslora merge: warning: ${message}\n`);
  const runConfig = readRunConfig(adapterDir, warn);
  // Like eval and generate, merge decodes the base in the format the adapter was trained
  // against unless --quantize is given.
  if (given.has("quantize")) {
    warnMergeQuantizeMismatch(runConfig, parseQuantizeOption(String(values.quantize)), warn);
  } else {
    const quantizeLine = applyRunQuantize(runConfig, values, given, warn);
    if (quantizeLine !== null) process.stderr.write(`tslora merge: ${quantizeLine}\n`);
  }
  const quantize = parseQuantizeOption(String(values.quantize));
  const modelDir = await resolveModelDir(String(values.model));
  const summary = mergeCheckpoint({
    modelDir,
    adapterDir,
    outDir: String(values.out),
    force: values.force === true,
    quantize,
  });
  console.log(
    `merged ${summary.mergedWeights} weights` +
      (summary.replacedTensors > 0 ? ` and replaced ${summary.replacedTensors} tensors` : "") +
      ` into ${summary.outDir} (${summary.files.join(", ")})`,
  );
  return 0;
}
