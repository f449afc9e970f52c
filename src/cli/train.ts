// `tslora train`: LoRA fine-tuning from the command line. Options are checked and the output
// folder is created before the data and model are loaded. A run that fails before its first
// step removes the folder it created, so a bad option or dataset leaves no half-written output.
import { rmSync } from "node:fs";
import { checkWritableFolder, makeFolder } from "../io/folders.js";
import { resolveModelDir } from "../io/hub.js";
import { join, resolve } from "node:path";
import { Rng } from "../engine/random.js";
import { writeFileAtomic } from "../io/atomic.js";
import { setThreads } from "../kernels/pool.js";
import { familyDefaultTargets } from "../lora/config.js";
import { applyLora } from "../lora/inject.js";
import { trainableParametersReport } from "../lora/report.js";
import { parseQuantizeOption } from "../engine/quant.js";
import { formatMiB, loadModel, type LoadDType, type QuantizeSummary } from "../models/index.js";
import { LATEST_FILE } from "../train/checkpoint-store.js";
import { fineTune } from "../train/fine-tune.js";
import { findRunFolderProblem, METRICS_FILE, TRAIN_CONFIG_FILE } from "../train/run-folder.js";
import type { ScheduleKind } from "../train/schedule.js";
import { readMetricsLog, type ValidationMetrics } from "../train/progress.js";
import { NonFiniteLossError } from "../train/trainer.js";
import { resolveMaxLength } from "./context-length.js";
import { exampleLine, readSplits, resolveTemplate, tokenizeSplit } from "./train-data.js";
import {
  formatHelp,
  isDefaultValue,
  parseOptions,
  TRAIN_OPTIONS,
  UsageError,
  type OptionValues,
} from "./train-options.js";
import { Linear } from "../nn/linear.js";
import { asRecordedPath, readRunSettings, withRunSettings } from "./resume-options.js";

const USAGE = "tslora train --model <dir|id> --data <path|id> --out <dir> [options]";
const SUMMARY = "Fine-tunes a LoRA adapter on a causal language model and saves it in PEFT format.";

/** Checks --out before anything is written: it must be a folder, and a new run needs it empty. */
export function checkOutputFolder(out: string, resume: boolean): void {
  switch (findRunFolderProblem(out, resume)) {
    case "file":
      throw new UsageError(`--out ${out} is a file; give the path of a folder (new or existing)`);
    case "no-checkpoint":
      throw new UsageError(
        `--resume: no checkpoint in ${join(out, "checkpoints")} (no ${LATEST_FILE} file); ` +
          `run without --resume to start a new run`,
      );
    case "not-empty":
      throw new UsageError(
        `--out ${out} is not empty; pass --resume to continue the run in it, or choose a new folder`,
      );
    case null:
      return;
  }
}

/** Formats the resolved settings as "config:" and one "  key: value" line per setting. */
export function formatConfig(config: Record<string, unknown>): string {
  const lines = ["config:"];
  const width = Math.max(...Object.keys(config).map((key) => key.length));
  for (const [key, value] of Object.entries(config)) {
    lines.push(`  ${(key + ":").padEnd(width + 1)} ${JSON.stringify(value)}`);
  }
  return lines.join("\n");
}

function str(values: OptionValues, name: string): string | undefined {
  const v = values[name];
  return v === undefined ? undefined : String(v);
}

function num(values: OptionValues, name: string): number | undefined {
  const v = values[name];
  return v === undefined ? undefined : Number(v);
}

/**
 * Rejects combinations of option values that the per-option ranges let through, before anything
 * is loaded.
 */
function checkTrainValues(values: OptionValues): void {
  const steps = num(values, "steps");
  const warmup = num(values, "warmup");
  if (steps !== undefined && warmup !== undefined && warmup > steps) {
    throw new UsageError(
      `tslora train: --warmup ${warmup} is more than the ${steps} training steps (--steps); ` +
        `lower --warmup or raise --steps`,
    );
  }
  const targets = str(values, "target-modules");
  if (targets !== undefined && targets.split(",").some((name) => name.trim() === "")) {
    throw new UsageError(
      `tslora train: --target-modules must be comma-separated module names such as ` +
        `q_proj,v_proj, or all-linear, got "${targets}"`,
    );
  }
}

/**
 * Creates --out (when missing) and checks that it is writable. Returns the outermost folder that
 * was created, or null when --out existed.
 */
function prepareOutputFolder(out: string): string | null {
  let created: string | null;
  try {
    created = makeFolder(out);
    checkWritableFolder(out);
  } catch (err) {
    throw new Error(`--out ${out}: ${(err as Error).message}`);
  }
  return created;
}

/** Runs `tslora train` with the arguments after the verb; resolves to the exit status. */
export async function runTrain(argv: readonly string[]): Promise<number> {
  const resumed = withRunSettings(argv);
  let values: OptionValues | null;
  try {
    values = parseOptions("train", resumed.argv, TRAIN_OPTIONS);
  } catch (err) {
    // A value taken from train_config.json is reported as if typed; name the file instead.
    const option = resumed.taken.find((name) => (err as Error).message.includes(`--${name} `));
    if (!(err instanceof UsageError) || option === undefined) throw err;
    throw new UsageError(
      `${err.message} (the value comes from ${resumed.path}; correct it there, or give ` +
        `--${option} on the command line)`,
    );
  }
  if (values === null) {
    console.log(formatHelp(USAGE, SUMMARY, TRAIN_OPTIONS));
    return 0;
  }
  if (resumed.taken.length > 0) {
    process.stderr.write(
      `tslora train: --resume takes the options not given from ${resumed.path}: ` +
        `${resumed.taken.map((option) => `--${option}`).join(", ")}\n`,
    );
  }
  checkTrainValues(values);
  const out = resolve(String(values.out));
  const resume = values.resume === true;
  checkOutputFolder(out, resume);
  const createdFolder = prepareOutputFolder(out);
  let started = false;
  try {
    return await trainInto(values, out, () => (started = true));
  } catch (err) {
    // A run that failed before its first step leaves no folder that it created.
    if (!started && createdFolder !== null) rmSync(createdFolder, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Loads the data and model and trains into the checked folder `out`. Calls `onStepDone` after
 * each optimizer step.
 */
async function trainInto(
  values: OptionValues,
  out: string,
  onStepDone: () => void,
): Promise<number> {
  const resume = values.resume === true;
  // The run's recorded settings, for a resume: its paths are compared by location.
  const previous = resume ? readRunSettings(out) : null;
  const threads = num(values, "threads");
  if (threads !== undefined) setThreads(threads);

  const seed = Number(values.seed);
  const template = resolveTemplate(str(values, "template"));
  const splits = await readSplits({
    data: String(values.data),
    valData: str(values, "val-data"),
    valFraction: Number(values["val-fraction"]),
    seed,
    template,
  });

  const quantizeSummary: QuantizeSummary = {
    kind: "int8",
    layers: 0,
    bytesBefore: 0,
    bytesAfter: 0,
  };
  const modelDir = await resolveModelDir(String(values.model));
  const maxLength = resolveMaxLength("train", modelDir, values);
  // Loading a 100M-parameter model takes seconds, so print what is happening (on stderr, which
  // carries status; stdout stays for results).
  const quantizeNote = values.quantize === "none" ? "" : `, quantizing to ${values.quantize}`;
  process.stderr.write(`loading ${modelDir}${quantizeNote} ...
`);
  const { model, tokenizer, dir } = await loadModel(modelDir, {
    dtype: String(values.dtype) as LoadDType,
    quantize: parseQuantizeOption(String(values.quantize)),
    quantizeSummary,
  });
  const tokenizeOptions = {
    maxLength,
    maskPrompt: values["mask-prompt"] === true,
    template,
  };
  const train = tokenizeSplit("training", splits.train, tokenizer, tokenizeOptions);
  // --val-fraction 0 leaves the validation split empty.
  const validation =
    splits.validation.length > 0
      ? tokenizeSplit("validation", splits.validation, tokenizer, tokenizeOptions)
      : null;

  const batchSize = Number(values["batch-size"]);
  const gradAccum = Number(values["grad-accum"]);
  const batchesPerEpoch = Math.ceil(train.examples.length / batchSize);
  const steps =
    num(values, "steps") ??
    Math.max(1, Math.ceil((batchesPerEpoch * Number(values.epochs)) / gradAccum));
  const warmup = num(values, "warmup") ?? Math.floor(0.05 * steps);
  if (warmup > steps) {
    throw new UsageError(
      `tslora train: --warmup ${warmup} is more than the ${steps} training steps that ` +
        `--epochs ${String(values.epochs)} gives; lower --warmup or set --steps`,
    );
  }
  const maxGradNorm = Number(values["max-grad-norm"]);
  const targets = str(values, "target-modules");
  // The model path as the run recorded it, when a resume names the same folder.
  const modelSetting = asRecordedPath(previous, "model", String(values.model));
  const loraInput = {
    r: Number(values.r),
    lora_alpha: Number(values.alpha),
    lora_dropout: Number(values.dropout),
    target_modules:
      targets === undefined
        ? [...familyDefaultTargets(model.modelType)]
        : targets === "all-linear"
          ? "all-linear"
          : targets.split(",").map((t) => t.trim()),
    base_model_name_or_path: modelSetting,
  };
  // PEFT's flag for GPT-2's Conv1D ([in, out]) weights, set from the model so that applyLora
  // has no mismatch to warn about. It stays out of the recorded settings, as runs before it did.
  const conv1d = model.namedModules().some(([, m]) => m instanceof Linear && m.layout === "inOut");
  applyLora(model, { ...loraInput, fan_in_fan_out: conv1d }, { rng: new Rng(seed) });

  // The settings that shape the run: a resumed run must use the same ones.
  const valData = str(values, "val-data");
  const settings = {
    model: modelSetting,
    data: asRecordedPath(previous, "data", String(values.data)),
    valData: valData === undefined ? null : asRecordedPath(previous, "valData", valData),
    valFraction: Number(values["val-fraction"]),
    template: str(values, "template") ?? null,
    maskPrompt: tokenizeOptions.maskPrompt,
    maxLength: tokenizeOptions.maxLength,
    batchSize,
    gradAccum,
    steps,
    lr: Number(values.lr),
    schedule: String(values.schedule),
    warmup,
    minLrRatio: Number(values["min-lr-ratio"]),
    weightDecay: Number(values["weight-decay"]),
    maxGradNorm,
    lora: loraInput,
    seed,
    // Recorded only when set, so runs started without the option still resume. Merge such an
    // adapter with `tslora merge --quantize <format>`.
    ...(quantizeSummary.layers > 0 ? { quantize: quantizeSummary.kind } : {}),
    // Likewise only a given --dtype, which eval and generate then load the base in.
    ...(values.dtype !== "auto" ? { dtype: String(values.dtype) } : {}),
  };
  const log = (line: string) => process.stderr.write(line + "\n");
  log(`tslora train: model ${dir} (${model.modelType}, weights ${model.weightDtype})`);
  if (quantizeSummary.layers > 0) {
    const q = quantizeSummary;
    log(
      `quantized ${q.layers} block linear weights to ${q.kind}: ` +
        `${formatMiB(q.bytesBefore)} -> ${formatMiB(q.bytesAfter)}`,
    );
  }
  log(`data: ${splits.source.description}`);
  log(`validation: ${splits.validationDescription}`);
  if (!isDefaultValue(values, "val-fraction")) {
    if (str(values, "val-data") !== undefined) {
      log("note: --val-fraction has no effect because --val-data is the validation data");
    } else if (splits.source.validation !== null) {
      log(
        "note: --val-fraction has no effect because the data folder's validation file is " +
          "the validation data",
      );
    }
  }
  if (valData !== undefined && resolve(valData) === resolve(String(values.data))) {
    log(
      "note: --val-data is the --data file, so validation measures examples the adapter " +
        "trains on and cannot show overfitting; leave out --val-data to hold out part of --data",
    );
  }
  log(train.line);
  const example = exampleLine(train.examples[0], tokenizer);
  if (example !== null) log(example);
  if (validation !== null) log(validation.line);
  log(
    formatConfig({
      ...settings,
      evalEvery: values["eval-every"],
      saveEvery: values["save-every"],
      gradCheckpointing: values["grad-checkpointing"],
      threads: threads ?? "default",
    }),
  );
  log(trainableParametersReport(model));
  const dropouts = Object.entries(model.dropoutRates).filter(([, rate]) => rate > 0);
  if (dropouts.length > 0) {
    const listed = dropouts.map(([key, rate]) => `${key} ${rate}`).join(", ");
    log(
      `base model dropout in training: ${listed} (from config.json or transformers' ` +
        `defaults), as PyTorch applies it in train mode; validation and eval apply none`,
    );
  }

  // A resumed run keeps the folder's metrics and settings: fineTune compares the settings with
  // the checkpoint's first, and a rejected resume must leave the folder as it was.
  const configPath = join(out, TRAIN_CONFIG_FILE);
  // The working folder lets eval and generate resolve a relative --data from anywhere. The
  // options that leave the results alone are stored apart from the settings, so a resume takes
  // them as defaults but may change them.
  // A resume keeps the folder the run was started in, which its relative paths refer to.
  const workingDirectory =
    typeof previous?.workingDirectory === "string" ? previous.workingDirectory : process.cwd();
  const runOptions = {
    evalEvery: Number(values["eval-every"]),
    saveEvery: Number(values["save-every"]),
    keepCheckpoints: Number(values["keep-checkpoints"]),
    gradCheckpointing: values["grad-checkpointing"] === true,
  };
  const writeSettings = () =>
    writeFileAtomic(
      configPath,
      JSON.stringify({ ...settings, workingDirectory, runOptions }, null, 2) + "\n",
    );
  if (!resume) writeSettings();
  let settingsStored = !resume;

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      log("second interrupt: exiting without saving");
      process.exit(130);
    }
    log("interrupt: saving a checkpoint after this step (Ctrl-C again quits without saving)");
    controller.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    const result = await fineTune({
      model,
      train: train.examples,
      validation: validation?.examples ?? null,
      padTokenId: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0,
      batchSize,
      gradAccum,
      steps,
      lr: Number(values.lr),
      schedule: String(values.schedule) as ScheduleKind,
      warmupSteps: warmup,
      minLrRatio: Number(values["min-lr-ratio"]),
      weightDecay: Number(values["weight-decay"]),
      maxGradNorm: maxGradNorm > 0 ? maxGradNorm : null,
      evalEvery: Number(values["eval-every"]),
      saveEvery: Number(values["save-every"]),
      keepCheckpoints: Number(values["keep-checkpoints"]),
      outDir: out,
      resume,
      seed,
      gradientCheckpointing: values["grad-checkpointing"] === true,
      settings,
      signal: controller.signal,
      onStep: () => {
        // After its first step a resume has passed its checks, so the settings (--steps may
        // have changed) can be stored.
        if (resume && !settingsStored) writeSettings();
        settingsStored = true;
        onStepDone();
      },
      log,
    });
    if (result.reason === "aborted") {
      log(`stopped at step ${result.step}; continue with the same command and --resume`);
      return 130;
    }
    // The whole run's validations, including those before a resume.
    const validations = readValidations(join(out, METRICS_FILE), result.validations);
    const last = validations[validations.length - 1];
    const first = validations[0];
    if (first !== undefined && last !== undefined) {
      log(
        `validation loss ${first.valLoss.toFixed(4)} (step ${first.step}) -> ` +
          `${last.valLoss.toFixed(4)} (step ${last.step})`,
      );
    }
    log(`adapter saved to ${result.adapterDir} (PEFT format)`);
    return 0;
  } catch (err) {
    if (err instanceof NonFiniteLossError) {
      log(err.message);
      return 1;
    }
    throw err;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/**
 * Returns the validations recorded in the metrics log at `path`, oldest first, or `fallback`
 * (this process's own) when the log cannot be read.
 */
function readValidations(
  path: string,
  fallback: readonly ValidationMetrics[],
): { step: number; valLoss: number }[] {
  try {
    const found = readMetricsLog(path)
      .filter((r) => r.type === "validation")
      .map((r) => ({ step: Number(r.step), valLoss: Number(r.valLoss) }));
    return found.length > 0 ? found : [...fallback];
  } catch {
    return [...fallback];
  }
}
