// Suggestions for an unknown command-line option: the option a user most likely meant, often
// one spelled as in the Hugging Face training scripts.
import type { OptionSpec } from "./train-options.js";

// Option names in the style of the Hugging Face training scripts, mapped to this tool's options.
const FOREIGN_NAMES: Record<string, string> = {
  "learning-rate": "lr",
  "lora-r": "r",
  rank: "r",
  "lora-alpha": "alpha",
  "lora-dropout": "dropout",
  "output-dir": "out",
  output: "out",
  "model-name-or-path": "model",
  "model-name": "model",
  dataset: "data",
  "dataset-name": "data",
  "train-file": "data",
  "validation-file": "val-data",
  "max-steps": "steps",
  "num-train-epochs": "epochs",
  "per-device-train-batch-size": "batch-size",
  "gradient-accumulation-steps": "grad-accum",
  "gradient-checkpointing": "grad-checkpointing",
  "warmup-steps": "warmup",
  "max-seq-length": "max-length",
  "max-seq-len": "max-length",
  "lr-scheduler-type": "schedule",
  "resume-from-checkpoint": "resume",
  "load-in-8bit": "quantize",
  "load-in-4bit": "quantize",
};

/**
 * Returns the option of `specs` that an unknown `name` most likely means: the option, or the
 * name the Hugging Face scripts use for it, that is fewest edits away ("_" read as "-"), at
 * most two. Returns null when none is that close.
 */
export function similarOption(name: string, specs: readonly OptionSpec[]): string | null {
  const known = new Set(specs.map((spec) => spec.name));
  // Each name a user may have meant, with the option it stands for.
  const candidates: [string, string][] = [...known].map((option) => [option, option]);
  for (const [foreign, option] of Object.entries(FOREIGN_NAMES)) {
    if (known.has(option)) candidates.push([foreign, option]);
  }
  const dashed = name.replaceAll("_", "-");
  let best: string | null = null;
  let bestDistance = 3;
  for (const [candidate, option] of candidates) {
    const distance = editDistance(dashed, candidate);
    if (distance < bestDistance) {
      best = option;
      bestDistance = distance;
    }
  }
  return best;
}

/** Returns the Levenshtein distance between `a` and `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min(previous[j] + 1, row[j - 1] + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length];
}
