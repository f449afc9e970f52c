// The rules for a training run's output folder, shared by fineTune and `tslora train --out`:
// a new run needs a folder without another run's files, and a resumed run needs a checkpoint.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { LATEST_FILE } from "./checkpoint-store.js";

/** The per-step log that a run appends to in its output folder. */
export const METRICS_FILE = "metrics.jsonl";

/** The settings file that `tslora train` writes into its output folder before the first step. */
export const TRAIN_CONFIG_FILE = "train_config.json";

/**
 * Files that a run writes before its first checkpoint. A run stopped that early leaves only
 * these, and a new run in the same folder replaces them.
 */
const RUN_START_FILES: ReadonlySet<string> = new Set([TRAIN_CONFIG_FILE, METRICS_FILE]);

/**
 * A reason the folder cannot take the run: "file" (the path is a file), "no-checkpoint" (resume
 * without checkpoints/latest) or "not-empty" (a new run in a folder with another run's files).
 */
export type RunFolderProblem = "file" | "no-checkpoint" | "not-empty";

/** Checks the output folder `dir` for a new run (`resume` false) or a resumed one. */
export function findRunFolderProblem(dir: string, resume: boolean): RunFolderProblem | null {
  if (!existsSync(dir)) return resume ? "no-checkpoint" : null;
  if (!statSync(dir).isDirectory()) return "file";
  if (resume) {
    return existsSync(join(dir, "checkpoints", LATEST_FILE)) ? null : "no-checkpoint";
  }
  const entries = readdirSync(dir);
  return entries.some((name) => !RUN_START_FILES.has(name)) ? "not-empty" : null;
}
