// `tslora info`: what a model folder contains, read from config.json and the safetensors
// headers without loading the weights: architecture sizes, parameter count, stored dtype and
// the memory that loading and generating need.
import { parseQuantizeOption, quantizedByteLength, type QuantizeOption } from "../engine/quant.js";
import { openCheckpoint, type Checkpoint } from "../io/checkpoint.js";
import { readModelConfig } from "../io/config.js";
import { resolveModelDir } from "../io/hub.js";
import { architectureName, modelDims } from "../models/registry.js";
import type { ModelDims } from "../models/types.js";
import { QUANTIZE_OPTION } from "./quantize-option.js";
import { formatHelp, parseOptions, type OptionSpec } from "./train-options.js";

const USAGE = "tslora info --model <dir|id> [--dtype auto|f32|bf16] [--quantize int8|nf4] [--json]";
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
  QUANTIZE_OPTION,
  { name: "json", type: "boolean", default: false, help: "Print one JSON object instead of text." },
];

/** Memory of the block Linear weights that --quantize replaces, before and after. */
export interface QuantizationInfo {
  kind: Exclude<QuantizeOption, "none">;
  /** Linear weights of the transformer blocks. */
  layers: number;
  /** Their bytes at the load dtype. */
  bytesBefore: number;
  /** Their bytes quantized (codes and scales). */
  bytesAfter: number;
}

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
  /** The --quantize choice and its effect, or null without quantization. */
  quantization: QuantizationInfo | null;
}

/** Collects the information of the model folder `dir` from its config and file headers. */
export function describeModel(
  dir: string,
  dtype: "auto" | "f32" | "bf16" = "auto",
  quantize: QuantizeOption = "none",
): ModelInfo {
  const config = readModelConfig(dir);
  const dims = modelDims(config);
  const checkpoint = openCheckpoint(dir);
  try {
    const stored = storedTensors(checkpoint, dims);
    checkStoredSizes(stored, dims, dir);
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
    let quantization: QuantizationInfo | null = null;
    if (quantize !== "none") {
      quantization = { kind: quantize, layers: 0, bytesBefore: 0, bytesAfter: 0 };
      // Conv1D (GPT-2) stores [in, out]; the others [out, in].
      const inOut = config.model_type === "gpt2";
      for (const t of stored.filter((s) => isBlockLinearWeight(s.name, s.shape))) {
        const [outFeatures, inFeatures] = inOut ? [t.shape[1], t.shape[0]] : t.shape;
        quantization.layers++;
        quantization.bytesBefore += t.size * matrixBytes;
        quantization.bytesAfter += quantizedByteLength(quantize, outFeatures, inFeatures);
      }
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
      quantization,
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
): { name: string; dtype: string; size: number; ndim: number; shape: number[] }[] {
  const names = checkpoint.names.filter((name) => !checkpoint.aliases.has(name));
  const hasEmbedding = names.some((n) => /(embed_tokens|wte|word_embeddings)\.weight$/.test(n));
  return names
    .filter((name) => !(dims.tieWordEmbeddings && hasEmbedding && name === "lm_head.weight"))
    .map((name) => {
      const info = checkpoint.info(name);
      return {
        name,
        dtype: info.dtype,
        size: info.shape.reduce((a, b) => a * b, 1),
        ndim: info.shape.length,
        shape: [...info.shape],
      };
    });
}

/**
 * Throws when the stored token embedding or the number of stored blocks disagrees with
 * config.json, the mistakes that loading would reject. Without this check info would print the
 * config's sizes beside the tensors' parameter count. The other weights are not checked, because
 * their names and layouts differ between families.
 */
function checkStoredSizes(
  stored: readonly { name: string; shape: number[] }[],
  dims: ModelDims,
  dir: string,
): void {
  const advice = "Check that config.json belongs to these weights.";
  const embedding = stored.find((t) => /(embed_tokens|wte|word_embeddings)\.weight$/.test(t.name));
  const expected = [dims.vocabSize, dims.hiddenSize];
  if (
    embedding !== undefined &&
    (embedding.shape.length !== 2 || embedding.shape.some((d, i) => d !== expected[i]))
  ) {
    throw new Error(
      `info: the checkpoint in ${dir} does not match its config.json: ${embedding.name} has ` +
        `shape [${embedding.shape.join(", ")}], but config.json gives vocabulary ` +
        `${dims.vocabSize} and hidden size ${dims.hiddenSize}, so [${expected.join(", ")}]. ${advice}`,
    );
  }
  const blocks = new Set<string>();
  for (const t of stored) {
    const match = /(?:^|\.)(?:layers|h)\.(\d+)\./.exec(t.name);
    if (match !== null) blocks.add(match[1]);
  }
  if (blocks.size > 0 && blocks.size !== dims.numLayers) {
    throw new Error(
      `info: the checkpoint in ${dir} does not match its config.json: it stores ` +
        `${blocks.size} transformer blocks, but config.json gives ${dims.numLayers} layers. ${advice}`,
    );
  }
}

/**
 * Returns true for the weight of a Linear inside a transformer block (the layers --quantize
 * replaces): a matrix under "layers.<i>." (Llama) or "h.<i>." (GPT-2, BLOOM).
 */
function isBlockLinearWeight(name: string, shape: readonly number[]): boolean {
  return shape.length === 2 && name.endsWith(".weight") && /(^|\.)(layers|h)\.\d+\./.test(name);
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

/** Formats the KV cache size for the model's full context, or per 1024 tokens without one. */
function formatKvCache(info: ModelInfo): string {
  const context = info.dims.maxPositions ?? info.maxPositionEmbeddings;
  const tokens = context ?? 1024;
  const bytes = formatBytes(info.kvCacheBytesPerToken * tokens);
  return context === null
    ? `${bytes} per 1024 tokens of context`
    : `${bytes} per sequence of ${tokens} tokens (the full context)`;
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
    ["parameters", `${info.parameters.toLocaleString("en-US")} (${formatCount(info.parameters)})`],
    ["stored dtype", stored],
    ["weights in memory", `${formatBytes(info.weightBytes)} (matrices as ${info.loadDtype})`],
    ["KV cache", formatKvCache(info)],
  ];
  const q = info.quantization;
  if (q !== null) {
    const after = info.weightBytes - q.bytesBefore + q.bytesAfter;
    rows.push(
      [
        "quantized",
        `${q.kind}: ${q.layers} block linear weights, ${formatBytes(q.bytesBefore)} -> ` +
          `${formatBytes(q.bytesAfter)} (embeddings, norms and output layer unchanged)`,
      ],
      ["weights quantized", `${formatBytes(after)} (was ${formatBytes(info.weightBytes)})`],
    );
  }
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
  const info = describeModel(
    dir,
    String(values.dtype) as "auto" | "f32" | "bf16",
    parseQuantizeOption(String(values.quantize)),
  );
  console.log(values.json === true ? JSON.stringify(info, null, 2) : formatInfo(info));
  return 0;
}
