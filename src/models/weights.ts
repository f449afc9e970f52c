// Loading a checkpoint into an architecture: config.json picks the architecture, then every
// parameter is copied from the safetensors files by its Hugging Face name, after all names and
// shapes have been checked.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { QuantizeOption, Tensor } from "../engine/index.js";
import { encodeBf16, encodeF16, formatShape } from "../engine/tensor.js";
import {
  INDEX_FILE,
  openCheckpoint,
  resolveWeightName,
  SINGLE_FILE,
  type Checkpoint,
} from "../io/checkpoint.js";
import { readModelConfig } from "../io/config.js";
import { decodeFloat32Into, isFloatDType, SAFETENSORS_DTYPE_BYTES } from "../io/dtypes.js";
import {
  withDeferredLinearWeights,
  withUninitializedParameters,
  type WeightDType,
} from "../nn/param.js";
import { allocateFloatLinears, quantizingLoader, type QuantizeSummary } from "./quantize.js";
import { createModel } from "./registry.js";
import type { CausalLM } from "./types.js";

/** "auto" keeps the checkpoint's float type (bf16, f16 or f32) for the weight matrices. */
export type LoadDType = "f32" | "bf16" | "auto";

/** The accepted `dtype` values of loadModel and loadModelFromDir. */
export const LOAD_DTYPES: readonly LoadDType[] = ["auto", "f32", "bf16"];

const QUANTIZE_OPTIONS: readonly QuantizeOption[] = ["none", "int8", "nf4"];

/**
 * Checks the string options of a model load before any file is read, because an unknown dtype
 * would otherwise fail deep inside tensor allocation. `caller` names the function in the error.
 */
export function checkLoadOptions(caller: string, dtype: unknown, quantize: unknown = "none"): void {
  if (!(LOAD_DTYPES as readonly unknown[]).includes(dtype)) {
    throw new Error(
      `${caller}: invalid dtype ${JSON.stringify(dtype)}; expected one of ` +
        `${LOAD_DTYPES.map((d) => JSON.stringify(d)).join(", ")}`,
    );
  }
  if (!(QUANTIZE_OPTIONS as readonly unknown[]).includes(quantize)) {
    throw new Error(
      `${caller}: invalid quantize ${JSON.stringify(quantize)}; expected one of ` +
        `${QUANTIZE_OPTIONS.map((q) => JSON.stringify(q)).join(", ")}`,
    );
  }
}

export interface LoadFromDirOptions {
  /**
   * Quantize every Linear of the transformer blocks to int8 or NF4 while loading (see
   * models/quantize.ts); "none" (default) keeps the weights as `dtype`.
   */
  quantize?: QuantizeOption;
  /** Filled with the quantized layers' memory before and after, when quantizing. */
  summary?: QuantizeSummary;
}

/** Builds the architecture of `dir`/config.json and loads its safetensors weights. */
export function loadModelFromDir(
  dir: string,
  dtype: LoadDType = "auto",
  options: LoadFromDirOptions = {},
): CausalLM {
  const quantize = options.quantize ?? "none";
  checkLoadOptions("loadModelFromDir", dtype, quantize);
  const config = readModelConfig(dir);
  const checkpoint = openCheckpoint(dir);
  try {
    const weightDtype = resolveDtype(dtype, checkpoint);
    if (quantize === "none") {
      const model = createModel(config, weightDtype);
      loadWeights(model, checkpoint);
      return model.eval();
    }
    // The block Linear weights are created without storage and quantized straight from the
    // file, so the quantized weights are allocated one after another in load order.
    const model = withUninitializedParameters(() =>
      withDeferredLinearWeights(() => createModel(config, weightDtype)),
    );
    allocateFloatLinears(model);
    const summary = options.summary ?? ({} as QuantizeSummary);
    Object.assign(summary, { kind: quantize, layers: 0, bytesBefore: 0, bytesAfter: 0 });
    loadWeights(model, checkpoint, quantizingLoader(model, quantize, summary));
    return model.eval();
  } finally {
    checkpoint.close();
  }
}

/**
 * Loads one parameter in place of the default copy: returns true when it handled `target`
 * (stored in the checkpoint as `stored`), false to let loadWeights copy it.
 */
export type TensorLoader = (
  path: string,
  target: Tensor,
  checkpoint: Checkpoint,
  stored: string,
) => boolean;

/** Returns the weight storage type: `dtype`, or for "auto" the type of the stored weights. */
function resolveDtype(dtype: LoadDType, checkpoint: Checkpoint): WeightDType {
  if (dtype !== "auto") return dtype;
  const counts = new Map<string, number>();
  for (const name of checkpoint.names) {
    const info = checkpoint.info(name);
    if (info.shape.length === 2) counts.set(info.dtype, (counts.get(info.dtype) ?? 0) + 1);
  }
  if ((counts.get("BF16") ?? 0) > 0) return "bf16";
  if ((counts.get("F16") ?? 0) > 0) return "f16";
  return "f32";
}

// Buffers that some checkpoints store but that are recomputed here: GPT-2's causal mask
// ("attn.bias", "attn.masked_bias") and RoPE's inverse frequencies.
const IGNORED_SUFFIXES = [".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"];

interface Assignment {
  path: string;
  stored: string;
  tensor: Tensor;
}

/**
 * Copies every parameter of `model` from `checkpoint`, converting the dtype. Checks all names
 * and shapes first and throws one error listing every missing, unexpected or mis-shaped tensor.
 * A tied output projection may be stored as the embedding or as "lm_head.weight".
 */
export function loadWeights(
  model: CausalLM,
  checkpoint: Checkpoint,
  loadTensor?: TensorLoader,
): void {
  const embeddingPath = model.dims.tieWordEmbeddings
    ? findParameterPath(model, model.lmHeadWeight())
    : null;
  const assignments: Assignment[] = [];
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [path, tensor] of model.namedParameters()) {
    const candidates = path === embeddingPath ? [path, "lm_head.weight"] : [path];
    const stored = resolveWeightName(checkpoint, candidates);
    if (stored === null) {
      missing.push(path);
      continue;
    }
    const info = checkpoint.info(stored);
    const same =
      info.shape.length === tensor.ndim && info.shape.every((d, i) => d === tensor.shape[i]);
    if (!same) {
      mismatched.push(
        `${stored} in ${fileOf(checkpoint, stored)}: stored ${formatShape(info.shape)}, ` +
          `config expects ${formatShape(tensor.shape)}`,
      );
    }
    assignments.push({ path, stored, tensor });
  }
  const unexpected = findUnexpected(checkpoint, assignments, embeddingPath !== null);
  if (missing.length + mismatched.length + unexpected.length > 0) {
    throw new Error(describeProblems(model, checkpoint, missing, unexpected, mismatched));
  }
  for (const { path, stored, tensor } of assignments) {
    if (loadTensor?.(path, tensor, checkpoint, stored) === true) continue;
    copyInto(tensor, checkpoint, stored);
  }
}

function findParameterPath(model: CausalLM, target: Tensor): string | null {
  return model.namedParameters().find(([, t]) => t === target)?.[0] ?? null;
}

function findUnexpected(checkpoint: Checkpoint, used: Assignment[], tied: boolean): string[] {
  const usedNames = new Set(used.map((a) => a.stored));
  // A name is used when it, or the stored tensor it is an alias of, was read.
  for (const [alias, stored] of checkpoint.aliases) {
    if (usedNames.has(alias)) usedNames.add(stored);
  }
  return checkpoint.names.filter((name) => {
    if (usedNames.has(name) || checkpoint.aliases.has(name)) return false;
    if (IGNORED_SUFFIXES.some((s) => name.endsWith(s))) return false;
    // A tied model reads its embedding; a copy saved as lm_head.weight is redundant.
    return !(tied && name === "lm_head.weight");
  });
}

function describeProblems(
  model: CausalLM,
  checkpoint: Checkpoint,
  missing: string[],
  unexpected: string[],
  mismatched: string[],
): string {
  const lines = [
    `loadWeights: the checkpoint in ${checkpoint.dir} does not match the ${model.modelType} config:`,
  ];
  if (mismatched.length > 0)
    lines.push(`  shape mismatches (${mismatched.length}):`, ...mismatched.map((m) => `    ${m}`));
  if (missing.length > 0)
    lines.push(`  missing tensors (${missing.length}):`, ...missing.map((m) => `    ${m}`));
  if (unexpected.length > 0)
    lines.push(
      `  unexpected tensors (${unexpected.length}):`,
      ...unexpected.map((m) => `    ${m}`),
    );
  lines.push(
    "  Check that config.json belongs to these weights (sizes, layer count, tie_word_embeddings).",
  );
  return lines.join("\n");
}

/** Returns the file that stores `name`: model.safetensors, or its shard from the index. */
function fileOf(checkpoint: Checkpoint, name: string): string {
  const single = join(checkpoint.dir, SINGLE_FILE);
  if (existsSync(single)) return single;
  try {
    const index = JSON.parse(readFileSync(join(checkpoint.dir, INDEX_FILE), "utf8")) as {
      weight_map?: Record<string, string>;
    };
    const stored = checkpoint.aliases.get(name) ?? name;
    const shard = index.weight_map?.[stored];
    return shard === undefined ? checkpoint.dir : join(checkpoint.dir, shard);
  } catch {
    return checkpoint.dir;
  }
}

// Elements converted per read when the stored dtype differs from the loaded one.
const CONVERT_CHUNK = 1 << 20;

/**
 * Reads tensor `name` and writes it into `target`, converting F32/BF16/F16 as needed. Bytes of
 * the same type go straight from the file into the wasm memory; a conversion reads and converts
 * a chunk at a time. Either way the tensor never exists whole in JavaScript memory, so loading
 * peaks at the model's own size.
 */
function copyInto(target: Tensor, checkpoint: Checkpoint, name: string): void {
  const stored = checkpoint.info(name).dtype;
  const sameType =
    (stored === "F32" && target.dtype === "f32") ||
    (stored === "BF16" && target.dtype === "bf16") ||
    (stored === "F16" && target.dtype === "f16");
  if (sameType) {
    checkpoint.readInto(name, target.bytes());
    return;
  }
  if (!isFloatDType(stored) || target.dtype === "i32") {
    throw new Error(
      `loadWeights: cannot load tensor "${name}" stored as ${stored} into ${target.dtype}; ` +
        `weights must be stored as F32, F16 or BF16`,
    );
  }
  const width = SAFETENSORS_DTYPE_BYTES[stored];
  const total = target.size;
  const raw = new Uint8Array(Math.min(total, CONVERT_CHUNK) * width);
  const values = new Float32Array(Math.min(total, CONVERT_CHUNK));
  for (let start = 0; start < total; start += CONVERT_CHUNK) {
    const n = Math.min(CONVERT_CHUNK, total - start);
    const bytes = raw.subarray(0, n * width);
    checkpoint.readInto(name, bytes, start * width);
    const chunk = values.subarray(0, n);
    decodeFloat32Into(bytes, stored, chunk, `tensor "${name}"`);
    if (target.dtype === "f32") target.f32().set(chunk, start);
    else if (target.dtype === "bf16") encodeBf16(chunk, target.u16().subarray(start, start + n));
    else encodeF16(chunk, target.u16().subarray(start, start + n));
  }
}
