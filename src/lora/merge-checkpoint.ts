// Writing a merged checkpoint folder. Every adapted weight becomes W + scaling · B·A, computed
// in f32 and stored in the weight's original dtype. Trained biases and modules_to_save tensors
// take the adapter's values, and every other tensor is copied byte for byte. File names, tensor
// names, header order, metadata and the tied-embedding convention stay those of the source, so
// transformers and tslora load the result like the base model.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { INDEX_FILE, SINGLE_FILE } from "../io/checkpoint.js";
import { makeFolder } from "../io/folders.js";
import { decodeToFloat32, encodeFromFloat32, isFloatDType } from "../io/dtypes.js";
import { readSafetensors, writeSafetensors, type RawTensor } from "../io/safetensors.js";
import { quantizeRoundTrip, type QuantKind, type QuantizeOption } from "../engine/index.js";
import { loadModelFromDir, quantizableLinears } from "../models/index.js";
import type { Linear } from "../nn/linear.js";
import type { CausalLM } from "../models/index.js";
import { loadAdapter } from "./adapter-io.js";
import { addLoraDelta } from "./merge.js";
import { loraState, type AdapterRecord, type LoraState } from "./state.js";

/** Files besides the weights that a model folder needs; each one is copied when present. */
const COPIED_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
];

export interface MergeCheckpointOptions {
  /** Local model folder (config.json and safetensors weights). */
  modelDir: string;
  /** PEFT adapter folder. */
  adapterDir: string;
  /** Output folder; it must not exist or be empty unless `force` is set. */
  outDir: string;
  /** Replace a non-empty output folder. */
  force?: boolean;
  /**
   * The quantization the adapter was trained on (default "none"). With int8 or NF4, every block
   * Linear weight is quantized and decoded before the merge, so the output is the base that the
   * adapter saw, stored in the checkpoint's dtype.
   */
  quantize?: QuantizeOption;
}

export interface MergeSummary {
  outDir: string;
  /** Weight matrices that received a LoRA delta. */
  mergedWeights: number;
  /** Bias and modules_to_save tensors replaced by the adapter's values. */
  replacedTensors: number;
  /** Safetensors files written. */
  files: string[];
}

/** Throws unless `dir` is absent or empty, or `force` allows replacing it. */
function checkOutputFolder(dir: string, force: boolean, inputs: Record<string, string>): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) {
    throw new Error(
      `merge: output ${dir} exists and is not a folder; choose another output folder (--out)`,
    );
  }
  // Replacing the output folder deletes everything in it, so it must not be or contain an input.
  const out = realpathSync(dir);
  const occupied = readdirSync(dir).length > 0;
  for (const [role, input] of Object.entries(inputs)) {
    const real = existsSync(input) ? realpathSync(input) : resolve(input);
    if (isWithin(real, out)) {
      const where = real === out ? "is" : "contains";
      throw new Error(
        `merge: the output folder ${dir} ${where} the ${role} folder ${input}, and writing the ` +
          `merged model there would delete it; choose another output folder (--out)`,
      );
    }
    // A full folder inside an input (a run's checkpoints/, say) contains files of that input.
    if (occupied && isWithin(out, real)) {
      throw new Error(
        `merge: the output folder ${dir} is inside the ${role} folder ${input} and not empty, ` +
          `and writing the merged model there would delete its files; choose a new or empty ` +
          `output folder (--out)`,
      );
    }
  }
  if (occupied && isWithin(realpathSync(process.cwd()), out)) {
    throw new Error(
      `merge: the output folder ${dir} is or contains the current folder, and writing the ` +
        `merged model there would delete its files; choose another output folder (--out)`,
    );
  }
  if (occupied && !force) {
    throw new Error(
      `merge: output folder ${dir} is not empty; choose another output folder (--out) or ` +
        `pass --force (force: true in mergeCheckpoint) to replace it`,
    );
  }
}

/** Returns true when the real path `inner` is `outer` or inside it. */
function isWithin(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Returns the safetensors files of a checkpoint folder: the shards of the index, or one file. */
function weightFiles(dir: string): string[] {
  const index = join(dir, INDEX_FILE);
  if (existsSync(index)) {
    const parsed = JSON.parse(readFileSync(index, "utf8")) as {
      weight_map?: Record<string, string>;
    };
    return [...new Set(Object.values(parsed.weight_map ?? {}))].sort();
  }
  if (existsSync(join(dir, SINGLE_FILE))) return [SINGLE_FILE];
  throw new Error(`merge: ${dir} has neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
}

/**
 * Maps stored tensor names to model parameter paths. Hub GPT-2 and BLOOM checkpoints omit the
 * "transformer." prefix, and some omit "model.", so a stored name may be a path minus that prefix.
 */
function paramPathFor(stored: string, paths: ReadonlySet<string>): string | null {
  if (paths.has(stored)) return stored;
  for (const prefix of ["transformer.", "model."]) {
    if (paths.has(prefix + stored)) return prefix + stored;
  }
  return null;
}

/** Returns the tensor to write for `raw`: merged, replaced by the adapter's values, or as is. */
function mergedTensor(
  raw: RawTensor,
  path: string | null,
  state: LoraState,
  record: AdapterRecord,
  counts: { merged: number; replaced: number },
  quantized?: { kind: QuantKind; linears: ReadonlyMap<string, Linear> },
): RawTensor {
  if (path === null) return raw;
  const quantizedLinear = quantized?.linears.get(path);
  const trained = record.biases.get(path) ?? record.savedModules.get(path);
  if (trained !== undefined) {
    counts.replaced++;
    return { ...raw, data: encodeLike(raw, trained.toFloat32Array()) };
  }
  if (!path.endsWith(".weight")) return raw;
  const layer = state.layers.get(path.slice(0, -".weight".length));
  const w = layer?.adapters.get(record.name);
  if (quantized !== undefined && quantizedLinear !== undefined) {
    const { outFeatures, inFeatures, layout } = quantizedLinear;
    const decoded = decodeToFloat32(raw.data, raw.dtype, raw.name);
    const values = quantizeRoundTrip(quantized.kind, decoded, outFeatures, inFeatures, layout);
    if (layer === undefined || w === undefined) return { ...raw, data: encodeLike(raw, values) };
    const delta = { A: w.A.toFloat32Array(), B: w.B.toFloat32Array(), r: w.r, scaling: w.scaling };
    addLoraDelta(values, layout, inFeatures, outFeatures, delta, 1);
    counts.merged++;
    return { ...raw, data: encodeLike(raw, values) };
  }
  if (layer === undefined || w === undefined) return raw;

  const values = decodeToFloat32(raw.data, raw.dtype, raw.name);
  const { base } = layer;
  const delta = { A: w.A.toFloat32Array(), B: w.B.toFloat32Array(), r: w.r, scaling: w.scaling };
  addLoraDelta(values, base.layout, base.inFeatures, base.outFeatures, delta, 1);
  counts.merged++;
  return { ...raw, data: encodeLike(raw, values) };
}

function encodeLike(raw: RawTensor, values: Float32Array): Uint8Array {
  if (!isFloatDType(raw.dtype)) {
    throw new Error(
      `merge: tensor ${raw.name} has dtype ${raw.dtype}; only float weights can be merged`,
    );
  }
  return encodeFromFloat32(values, raw.dtype);
}

/**
 * Merges an adapter into a model folder and writes the result to `outDir`, atomically: the
 * files go to a temporary folder beside it, which is renamed into place once complete.
 */
export function mergeCheckpoint(options: MergeCheckpointOptions): MergeSummary {
  const outDir = resolve(options.outDir);
  checkOutputFolder(outDir, options.force ?? false, {
    model: options.modelDir,
    adapter: options.adapterDir,
  });
  // The temporary folder is made before the model loads, so an unwritable --out fails at once.
  const tmp = makeTemporaryFolder(outDir);
  try {
    // NOTE: the model is loaded whole (for its module tree and the strict adapter check) and
    // each shard is read whole, so peak memory is about the model size plus the largest shard.
    const model: CausalLM = loadModelFromDir(options.modelDir, "auto");
    const record = loadAdapter(model, options.adapterDir, { adapterName: "merge" });
    const state = loraState(model, "merge");
    const paths = new Set(model.namedParameters().map(([p]) => p));
    const quantize = options.quantize ?? "none";
    const quantized =
      quantize === "none"
        ? undefined
        : {
            kind: quantize,
            linears: new Map(quantizableLinears(model).map(([p, l]) => [`${p}.weight`, l])),
          };
    if (quantized !== undefined) {
      console.warn(
        `merge: the base is ${quantize}-quantized: ${quantized.linears.size} block weights are ` +
          `quantized, decoded to f32, merged and stored in the checkpoint's dtype, so the ` +
          `output keeps the quantization error that the adapter was trained with`,
      );
    }
    const counts = { merged: 0, replaced: 0 };
    const files = weightFiles(options.modelDir);
    for (const file of files) {
      const { tensors, metadata } = readSafetensors(join(options.modelDir, file));
      const out = [...tensors.values()].map((raw) =>
        mergedTensor(raw, paramPathFor(raw.name, paths), state, record, counts, quantized),
      );
      writeSafetensors(join(tmp, file), out, metadata);
    }
    const expected = record.targets.length;
    if (counts.merged !== expected) {
      throw new Error(
        `merge: merged ${counts.merged} of ${expected} adapted weights; the checkpoint's tensor ` +
          `names do not match the model's parameter paths`,
      );
    }
    copyModelFiles(options.modelDir, tmp);
    replaceFolder(tmp, outDir);
    return { outDir, mergedWeights: counts.merged, replacedTensors: counts.replaced, files };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Creates an empty temporary folder beside `outDir` and returns its path. */
function makeTemporaryFolder(outDir: string): string {
  const parent = dirname(outDir);
  makeFolder(parent);
  const tmp = join(parent, `.${basename(outDir)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    mkdirSync(tmp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`merge: cannot write into ${parent} (${code}); choose another --out`);
  }
  return tmp;
}

/**
 * Copies the files of COPIED_FILES and the shard index that `modelDir` has into `outDir`. The
 * copies get the owner's write permission, which files of a read-only model folder lack.
 */
function copyModelFiles(modelDir: string, outDir: string): void {
  for (const name of [...COPIED_FILES, INDEX_FILE]) {
    const source = join(modelDir, name);
    if (!existsSync(source)) continue;
    const target = join(outDir, name);
    copyFileSync(source, target);
    chmodSync(target, statSync(target).mode | 0o200);
  }
  if (!existsSync(join(modelDir, "tokenizer.json"))) {
    console.warn(
      `merge: ${modelDir} has no tokenizer.json, so the merged folder has none either; ` +
        `add the model's tokenizer.json to it before tslora generate or eval can use it`,
    );
  }
}

/** Renames `tmp` to `outDir`, moving an existing `outDir` aside first and deleting it after. */
function replaceFolder(tmp: string, outDir: string): void {
  if (!existsSync(outDir)) {
    renameSync(tmp, outDir);
    return;
  }
  const old = `${tmp}.old`;
  renameSync(outDir, old);
  try {
    renameSync(tmp, outDir);
  } catch (err) {
    renameSync(old, outDir);
    throw err;
  }
  rmSync(old, { recursive: true, force: true });
}
