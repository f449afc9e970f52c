// Tensor names in adapter_model.safetensors and the strict check of a file against the model.
// PEFT saves "base_model.model." + module path + ".lora_A.weight" (the adapter name removed);
// biases and modules_to_save tensors are saved under their model path with the same prefix.

export const KEY_PREFIX = "base_model.model.";

export type LoraMatrix = "lora_A" | "lora_B";

/** Returns the file key of a LoRA matrix, e.g. base_model.model.<path>.lora_A.weight. */
export function loraKey(modulePath: string, which: LoraMatrix): string {
  return `${KEY_PREFIX}${modulePath}.${which}.weight`;
}

/** Returns the file key of a model parameter saved with the adapter (a bias, modules_to_save). */
export function paramKey(paramPath: string): string {
  return `${KEY_PREFIX}${paramPath}`;
}

/** A parsed file key. `paramPath` is the model's parameter path with PEFT's wrappers removed. */
export type ParsedKey =
  | { kind: "lora"; modulePath: string; which: LoraMatrix }
  | { kind: "param"; paramPath: string }
  | { kind: "invalid"; reason: string };

// lora_A/lora_B with an optional adapter name segment: PEFT's state_dict() keeps ".default."
// where save_pretrained() removes it.
const LORA_RE = /^(.+)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight$/;

/** Parses one key of an adapter file. */
export function parseKey(key: string): ParsedKey {
  if (!key.startsWith(KEY_PREFIX)) {
    return { kind: "invalid", reason: `does not start with "${KEY_PREFIX}"` };
  }
  const rest = key.slice(KEY_PREFIX.length);
  const m = LORA_RE.exec(rest);
  if (m !== null) return { kind: "lora", modulePath: m[1], which: m[2] as LoraMatrix };
  if (/(^|\.)lora_[^.]*\./.test(rest)) {
    return { kind: "invalid", reason: "is a LoRA tensor this library does not support" };
  }
  // A LoRA-wrapped layer's own tensors live under ".base_layer." in PEFT's model, and
  // modules_to_save copies under ".modules_to_save.<adapter>.".
  const paramPath = rest
    .replace(/\.base_layer\./, ".")
    .replace(/\.modules_to_save\.[^.]+\./, ".")
    .replace(/\.original_module\./, ".");
  return { kind: "param", paramPath };
}

/** Expected sizes of one adapted Linear. */
export interface ExpectedLora {
  r: number;
  inFeatures: number;
  outFeatures: number;
}

/** Expected content of an adapter file, built from the config and the module tree. */
export interface ExpectedAdapter {
  lora: ReadonlyMap<string, ExpectedLora>;
  /** Model parameter path → shape, for biases (bias != "none") and modules_to_save tensors. */
  params: ReadonlyMap<string, readonly number[]>;
  /** Parameter paths that may be absent from the file (biases with bias "lora_only"). */
  optionalParams?: ReadonlySet<string>;
  /** Text appended to shape problems, e.g. "r = 4 in adapter_config.json". */
  rankSource: string;
}

/** A tensor header entry: name, dtype and shape. */
export interface TensorEntry {
  name: string;
  dtype: string;
  shape: readonly number[];
}

/** The file tensors assigned to the model, and every problem found. */
export interface AdapterMatch {
  lora: Map<string, { A: string; B: string }>;
  params: Map<string, string>;
  problems: string[];
}

const FLOAT_DTYPES = new Set(["F32", "F16", "BF16"]);

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Assigns every tensor of an adapter file to the model and collects every problem. Problems are
 * a key without the prefix, an unknown or duplicate key, a tensor for a module that is not a
 * target, a missing lora_A/lora_B or saved parameter, a wrong shape and a non-float dtype.
 */
export function matchAdapterTensors(
  tensors: readonly TensorEntry[],
  expected: ExpectedAdapter,
): AdapterMatch {
  const problems: string[] = [];
  const found = new Map<string, { A?: string; B?: string }>();
  const params = new Map<string, string>();

  for (const t of tensors) {
    const parsed = parseKey(t.name);
    if (parsed.kind === "invalid") {
      problems.push(`unexpected key "${t.name}": it ${parsed.reason}`);
      continue;
    }
    if (!FLOAT_DTYPES.has(t.dtype)) {
      problems.push(`"${t.name}" has dtype ${t.dtype}, expected F32, F16 or BF16`);
      continue;
    }
    if (parsed.kind === "lora") {
      checkLoraTensor(t, parsed.modulePath, parsed.which, expected, found, problems);
    } else {
      checkParamTensor(t, parsed.paramPath, expected, params, problems);
    }
  }

  const lora = new Map<string, { A: string; B: string }>();
  for (const path of expected.lora.keys()) {
    const pair = found.get(path);
    if (pair?.A === undefined) problems.push(`missing key "${loraKey(path, "lora_A")}"`);
    if (pair?.B === undefined) problems.push(`missing key "${loraKey(path, "lora_B")}"`);
    if (pair?.A !== undefined && pair.B !== undefined) lora.set(path, { A: pair.A, B: pair.B });
  }
  for (const path of expected.params.keys()) {
    if (!params.has(path) && !(expected.optionalParams?.has(path) ?? false)) {
      problems.push(`missing key "${paramKey(path)}"`);
    }
  }
  return { lora, params, problems };
}

function checkLoraTensor(
  t: TensorEntry,
  modulePath: string,
  which: LoraMatrix,
  expected: ExpectedAdapter,
  found: Map<string, { A?: string; B?: string }>,
  problems: string[],
): void {
  const target = expected.lora.get(modulePath);
  if (target === undefined) {
    problems.push(
      `unexpected key "${t.name}": "${modulePath}" is not a target module of this adapter ` +
        `in this model`,
    );
    return;
  }
  const slot = found.get(modulePath) ?? {};
  const side = which === "lora_A" ? "A" : "B";
  if (slot[side] !== undefined) {
    problems.push(`duplicate ${which} for "${modulePath}": "${slot[side]}" and "${t.name}"`);
    return;
  }
  // Recorded before the shape check: a tensor with a wrong shape is wrong, not missing.
  slot[side] = t.name;
  found.set(modulePath, slot);
  const want = which === "lora_A" ? [target.r, target.inFeatures] : [target.outFeatures, target.r];
  const same = t.shape.length === 2 && t.shape[0] === want[0] && t.shape[1] === want[1];
  if (!same) {
    const dims = which === "lora_A" ? "[r, in_features]" : "[out_features, r]";
    problems.push(
      `"${t.name}" has shape ${shapeText(t.shape)}, expected ${shapeText(want)} = ${dims} ` +
        `(r = ${target.r} from ${expected.rankSource})`,
    );
  }
}

function checkParamTensor(
  t: TensorEntry,
  paramPath: string,
  expected: ExpectedAdapter,
  params: Map<string, string>,
  problems: string[],
): void {
  const want = expected.params.get(paramPath);
  if (want === undefined) {
    problems.push(
      `unexpected key "${t.name}": "${paramPath}" is neither a LoRA tensor nor a bias or ` +
        `modules_to_save tensor that adapter_config.json asks for`,
    );
    return;
  }
  if (params.has(paramPath)) {
    problems.push(
      `duplicate tensor for "${paramPath}": "${params.get(paramPath)}" and "${t.name}"`,
    );
    return;
  }
  params.set(paramPath, t.name);
  const same = t.shape.length === want.length && t.shape.every((d, i) => d === want[i]);
  if (!same) {
    problems.push(`"${t.name}" has shape ${shapeText(t.shape)}, expected ${shapeText(want)}`);
  }
}

/**
 * Orders tensors as the safetensors library writes them: by dtype (wider alignment first, in
 * the order of the crate's Dtype enum, descending) and then by name in byte order.
 */
export function safetensorsOrder<T extends { name: string; dtype: string }>(tensors: T[]): T[] {
  const rank: Record<string, number> = {
    BOOL: 0,
    U8: 1,
    I8: 2,
    F8_E5M2: 3,
    F8_E4M3: 4,
    I16: 5,
    U16: 6,
    F16: 7,
    BF16: 8,
    I32: 9,
    U32: 10,
    F32: 11,
    F64: 12,
    I64: 13,
    U64: 14,
  };
  return [...tensors].sort((a, b) => {
    const d = (rank[b.dtype] ?? -1) - (rank[a.dtype] ?? -1);
    if (d !== 0) return d;
    if (a.name === b.name) return 0;
    return a.name < b.name ? -1 : 1;
  });
}
