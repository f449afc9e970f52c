// `tslora info`: what a model folder contains, read from config.json and the safetensors
// headers without loading the weights: architecture sizes, parameter count, stored dtype and
// the memory that loading and generating need.
import { openCheckpoint, type Checkpoint } from "../io/checkpoint.js";
import { readModelConfig } from "../io/config.js";
import { resolveModelDir } from "../io/hub.js";
import { architectureName, modelDims } from "../models/registry.js";
import type { ModelDims } from "../models/types.js";
import { formatHelp, parseOptions, type OptionSpec } from "./train-options.js";

const USAGE = "tslora info --model <dir|id> [--json]";
const SUMMARY =
  "Prints a model's architecture, parameter count, stored dtype and the memory needed to " +
  "load it, without loading the weights.";

export const INFO_OPTIONS: OptionSpec[] = [
  {
    name: "model",
    type: "string",
    value: "<dir|id>",
    required: true,
    help: "Model folder or Hub id (owner/name[@revision]).",
  },
  {
    name: "dtype",
    type: "string",
    value: "<type>",
    default: "auto",
    choices: ["auto", "f32", "bf16"],
    help: "Storage type of the weights used for the memory estimate (auto keeps the checkpoint's).",
  },
  { name: "json", type: "boolean", default: false, help: "Print one JSON object instead of text." },
];

export interface ModelInfo {
  dir: string;
  modelType: string;
  architecture: string;
  dims: ModelDims;
  /** max_position_embeddings from config.json (the trained context), or null when absent. */
  maxPositionEmbeddings: number | null;
  parameters: number;
  /** Stored dtype → number of tensors with it. */
  storedDtypes: Record<string, number>;
  /** Storage type of matrices after loading with the chosen --dtype. */
  loadDtype: "f32" | "bf16" | "f16";
  /** Bytes of the weights in memory after loading (matrices at loadDtype, vectors f32). */
  weightBytes: number;
  /** Bytes of the KV cache per token of context (f32 keys and values, every layer). */
  kvCacheBytesPerToken: number;
}

/** Collects the information of the model folder `dir` from its config and file headers. */
export function describeModel(dir: string, dtype: "auto" | "f32" | "bf16" = "auto"): ModelInfo {
  const config = readModelConfig(dir);
  const dims = modelDims(config);
  const checkpoint = openCheckpoint(dir);
  try {
    const stored = storedTensors(checkpoint, dims);
    const storedDtypes: Record<string, number> = {};
    for (const t of stored) storedDtypes[t.dtype] = (storedDtypes[t.dtype] ?? 0) + 1;
    const loadDtype = dtype === "auto" ? storedMatrixDtype(storedDtypes) : dtype;
    const matrixBytes = loadDtype === "f32" ? 4 : 2;
    let parameters = 0;
    let weightBytes = 0;
    for (const t of stored) {
      parameters += t.size;
      weightBytes += t.size * (t.ndim === 2 ? matrixBytes : 4);
    }
    return {
      dir,
      modelType: config.model_type,
      architecture: architectureName(config),
      dims,
      maxPositionEmbeddings: config.max_position_embeddings,
      parameters,
      storedDtypes,
      loadDtype,
      weightBytes,
      kvCacheBytesPerToken: 2 * dims.numLayers * dims.numKvHeads * dims.headDim * 4,
    };
  } finally {
    checkpoint.close();
  }
}

/** Returns the dtype that loading with "auto" keeps, as loadModelFromDir chooses it. */
function storedMatrixDtype(storedDtypes: Record<string, number>): "f32" | "bf16" | "f16" {
  if (storedDtypes.BF16 !== undefined) return "bf16";
  if (storedDtypes.F16 !== undefined) return "f16";
  return "f32";
}

/** Returns the stored tensors the model reads: aliases and a redundant tied lm_head skipped. */
function storedTensors(
  checkpoint: Checkpoint,
  dims: ModelDims,
): { dtype: string; size: number; ndim: number }[] {
  const names = checkpoint.names.filter((name) => !checkpoint.aliases.has(name));
  const hasEmbedding = names.some((n) => /(embed_tokens|wte|word_embeddings)\.weight$/.test(n));
  return names
    .filter((name) => !(dims.tieWordEmbeddings && hasEmbedding && name === "lm_head.weight"))
    .map((name) => {
      const info = checkpoint.info(name);
      return {
        dtype: info.dtype,
        size: info.shape.reduce((a, b) => a * b, 1),
        ndim: info.shape.length,
      };
    });
}

function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

function formatContext(info: ModelInfo): string {
  if (info.dims.maxPositions !== null) {
    return `${info.dims.maxPositions} tokens (learned position table)`;
  }
  const trained = info.maxPositionEmbeddings;
  return trained === null
    ? "not given in config.json"
    : `${trained} tokens (max_position_embeddings)`;
}

/** Formats the information as aligned "key: value" lines. */
export function formatInfo(info: ModelInfo): string {
  const d = info.dims;
  const stored = Object.entries(info.storedDtypes)
    .map(([dtype, count]) => `${dtype} (${count} tensors)`)
    .join(", ");
  const rows: [string, string][] = [
    ["model", info.dir],
    ["model_type", `${info.modelType} (${info.architecture})`],
    ["layers", String(d.numLayers)],
    ["hidden size", String(d.hiddenSize)],
    ["attention heads", `${d.numHeads} (KV heads ${d.numKvHeads}, head size ${d.headDim})`],
    ["MLP size", String(d.intermediateSize)],
    ["vocabulary", String(d.vocabSize)],
    ["context", formatContext(info)],
    ["tied embeddings", d.tieWordEmbeddings ? "yes" : "no"],
    ["parameters", `${info.parameters} (${formatCount(info.parameters)})`],
    ["stored dtype", stored],
    ["weights in memory", `${formatBytes(info.weightBytes)} (matrices as ${info.loadDtype})`],
    ["KV cache", `${formatBytes(info.kvCacheBytesPerToken * 1024)} per 1024 tokens of context`],
  ];
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${`${key}:`.padEnd(width + 2)}${value}`).join("\n");
}

/** Runs `tslora info` with the arguments after the verb; resolves to the exit status. */
export async function runInfo(argv: readonly string[]): Promise<number> {
  const values = parseOptions("info", argv, INFO_OPTIONS);
  if (values === null) {
    console.log(formatHelp(USAGE, SUMMARY, INFO_OPTIONS));
    return 0;
  }
  const dir = await resolveModelDir(String(values.model));
  const info = describeModel(dir, String(values.dtype) as "auto" | "f32" | "bf16");
  console.log(values.json === true ? JSON.stringify(info, null, 2) : formatInfo(info));
  return 0;
}
