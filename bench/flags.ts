// Options of the training and decode jobs, read from `npm run bench -- [job...] [--flag=value]`.
// bench/main.ts passes every argument that starts with "--" through to the jobs.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export type WeightDtype = "f32" | "bf16";

export interface BenchFlags {
  /** Measured training steps or generate() calls (--steps=N, default 5); reported as a median. */
  steps: number;
  /** Unmeasured steps first, while V8 tiers the kernels up (--warmup=N, default 2). */
  warmupSteps: number;
  /**
   * Training: warm up for at least this long as well (--warmup-seconds=S, default 3). A small
   * model runs its first 30 or so steps slower while V8 optimises the JavaScript around the
   * kernels, and 2 steps of TinyStories-656K take 40 ms.
   */
  warmupSeconds: number;
  /** Weight dtypes to run (--dtype=f32,bf16); null = the job's default. */
  dtypes: WeightDtype[] | null;
  /** Time every kernel and print the breakdown to stderr (--profile). */
  profile: boolean;
  /** Training batch size in place of the job's own (--batch=N); null = the job's. */
  batch: number | null;
  /** Recompute each block's activations in backward (--gradient-checkpointing; training). */
  gradientCheckpointing: boolean;
  /** Extra node arguments for the child processes (--cpu-prof-dir=DIR adds --cpu-prof). */
  nodeArgs: string[];
}

export const BENCH_FLAGS_HELP = [
  "options of the train and decode jobs:",
  "  --steps=N                 measured training steps or generate calls (default 5)",
  "  --warmup=N                unmeasured warm-up steps first (default 2)",
  "  --warmup-seconds=S        training: warm up for at least S seconds too (default 3)",
  "  --dtype=f32,bf16          weight dtypes to run (default: f32 for training, both for decoding)",
  "  --profile                 time every wasm kernel and print the breakdown to stderr",
  "  --gradient-checkpointing  training: recompute block activations in backward",
  "  --batch=N                 training: batch size in place of the job's (rows of T tokens)",
  "  --cpu-prof-dir=DIR        write a V8 CPU profile of each child process into DIR",
].join("\n");

function flagValue(argv: readonly string[], name: string): string | null {
  const prefix = `--${name}=`;
  const found = argv.filter((a) => a.startsWith(prefix));
  return found.length === 0 ? null : found[found.length - 1].slice(prefix.length);
}

function wholeNumber(argv: readonly string[], name: string, fallback: number, min: number): number {
  const text = flagValue(argv, name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`bench: --${name} must be a whole number >= ${min}, got "${text}"`);
  }
  return value;
}

function nonNegativeNumber(argv: readonly string[], name: string, fallback: number): number {
  const text = flagValue(argv, name);
  if (text === null) return fallback;
  const value = Number(text);
  if (text.trim() === "" || !Number.isFinite(value) || value < 0) {
    throw new Error(`bench: --${name} must be a number >= 0, got "${text}"`);
  }
  return value;
}

/** Reads the job flags from `argv` (default: this process's arguments). */
export function benchFlags(argv: readonly string[] = process.argv.slice(2)): BenchFlags {
  const dtypeText = flagValue(argv, "dtype");
  let dtypes: WeightDtype[] | null = null;
  if (dtypeText !== null) {
    const names = dtypeText.split(",").filter((d) => d.length > 0);
    const invalid = names.filter((d) => d !== "f32" && d !== "bf16");
    if (names.length === 0 || invalid.length > 0) {
      throw new Error(`bench: --dtype takes f32, bf16 or f32,bf16, got "${dtypeText}"`);
    }
    dtypes = names as WeightDtype[];
  }
  const profileDir = flagValue(argv, "cpu-prof-dir");
  return {
    steps: wholeNumber(argv, "steps", 5, 1),
    warmupSteps: wholeNumber(argv, "warmup", 2, 0),
    warmupSeconds: nonNegativeNumber(argv, "warmup-seconds", 3),
    dtypes,
    profile: argv.includes("--profile"),
    gradientCheckpointing: argv.includes("--gradient-checkpointing"),
    batch: flagValue(argv, "batch") === null ? null : wholeNumber(argv, "batch", 0, 1),
    nodeArgs: profileDir === null ? [] : ["--cpu-prof", `--cpu-prof-dir=${resolve(profileDir)}`],
  };
}

/**
 * Returns the absolute path of a fixture folder, or null when it is missing. The fixtures root
 * is TSLORA_FIXTURES, else ../shared/fixtures beside the repository (as in the tests).
 */
export function fixtureDir(relativePath: string): string | null {
  const root = resolve(process.env.TSLORA_FIXTURES ?? join(process.cwd(), "../shared/fixtures"));
  const path = join(root, relativePath);
  return existsSync(path) ? path : null;
}
