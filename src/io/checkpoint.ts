// Model checkpoints in a Hugging Face folder: one model.safetensors, or shards listed in
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}). Also resolves the
// two ways a tied weight is stored and the optional "model." / "transformer." name prefixes.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { isAbsolute, join, normalize, sep } from "node:path";
import { SafetensorsFile, type RawTensor, type TensorInfo } from "./safetensors.js";

export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";

/**
 * A checkpoint opened for reading one tensor at a time, so that a loader can copy each weight
 * into the engine's memory without holding the whole file in JavaScript buffers.
 */
export interface Checkpoint {
  readonly dir: string;
  /** Every tensor name, including aliases restored from "__metadata__". */
  readonly names: string[];
  /** Metadata of the single file, or of the first shard. */
  readonly metadata: Record<string, string>;
  /** Alias name → stored name, from metadata written when shared tensors were saved once. */
  readonly aliases: ReadonlyMap<string, string>;
  has(name: string): boolean;
  info(name: string): TensorInfo;
  read(name: string): RawTensor;
  /** Reads `target.byteLength` bytes of `name`'s data from byte `offset` into `target`. */
  readInto(name: string, target: Uint8Array, offset?: number): void;
  close(): void;
}

/** Reads the weight_map of `dir`/model.safetensors.index.json: tensor name → shard file. */
export function readShardIndex(dir: string): Map<string, string> {
  const path = join(dir, INDEX_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(
      `checkpoint: ${path}: cannot read the shard index (${(err as Error).message}). ` +
        `Re-download the checkpoint`,
    );
  }
  const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(
      `checkpoint: ${path}: "weight_map" must be an object of tensor name → shard file, ` +
        `got ${JSON.stringify(weightMap)}. Re-download the checkpoint`,
    );
  }
  const result = new Map<string, string>();
  for (const [name, file] of Object.entries(weightMap)) {
    const unsafe =
      typeof file !== "string" ||
      file.length === 0 ||
      isAbsolute(file) ||
      normalize(file).split(sep).includes("..");
    if (unsafe) {
      throw new Error(
        `checkpoint: ${path}: tensor "${name}" maps to ${JSON.stringify(file)}, expected a ` +
          `file name inside ${dir}. Fix the index`,
      );
    }
    result.set(name, file);
  }
  return result;
}

/** Returns how an alias entry of "__metadata__" maps names: {alias: stored name}. */
function findAliases(
  metadata: Record<string, string>,
  stored: ReadonlySet<string>,
): Map<string, string> {
  // transformers stores a tied weight once and records {"dropped name": "kept name"} in the
  // metadata (for example {"model.embed_tokens.weight": "lm_head.weight"}); keys such as
  // "format" never name a stored tensor, so they are not mistaken for aliases.
  const aliases = new Map<string, string>();
  for (const [key, value] of Object.entries(metadata)) {
    if (!stored.has(key) && stored.has(value)) aliases.set(key, value);
  }
  return aliases;
}

function listFolder(dir: string): string {
  try {
    return readdirSync(dir).join(", ") || "(empty)";
  } catch {
    return "(not readable)";
  }
}

/** Opens the checkpoint in `dir`: model.safetensors, or the shards of the index. */
export function openCheckpoint(dir: string): Checkpoint {
  const files = new Map<string, SafetensorsFile>();
  const owner = new Map<string, SafetensorsFile>();
  try {
    if (existsSync(join(dir, SINGLE_FILE))) {
      const file = SafetensorsFile.open(join(dir, SINGLE_FILE));
      files.set(SINGLE_FILE, file);
      for (const name of file.names) owner.set(name, file);
    } else if (existsSync(join(dir, INDEX_FILE))) {
      openShards(dir, files, owner);
    } else {
      const hasBin = existsSync(join(dir, "pytorch_model.bin"));
      throw new Error(
        `checkpoint: no ${SINGLE_FILE} or ${INDEX_FILE} in ${dir} (found: ${listFolder(dir)}). ` +
          (hasBin
            ? "Pickle checkpoints (.bin) are not supported: convert the weights to safetensors."
            : "Point to a Hugging Face model folder or Hub id that has safetensors weights."),
      );
    }
  } catch (err) {
    for (const file of files.values()) file.close();
    throw err;
  }
  const first = files.values().next().value as SafetensorsFile;
  return makeCheckpoint(dir, files, owner, first.metadata);
}

function openShards(
  dir: string,
  files: Map<string, SafetensorsFile>,
  owner: Map<string, SafetensorsFile>,
): void {
  const index = readShardIndex(dir);
  for (const shard of new Set(index.values())) {
    const path = join(dir, shard);
    if (!existsSync(path)) {
      throw new Error(
        `checkpoint: shard ${shard} listed in ${join(dir, INDEX_FILE)} is missing. ` +
          `Download every shard of the checkpoint`,
      );
    }
    const file = SafetensorsFile.open(path);
    files.set(shard, file);
    for (const name of file.names) {
      const other = owner.get(name);
      if (other) {
        throw new Error(
          `checkpoint: tensor "${name}" is stored in both ${other.path} and ${path}. ` +
            `Re-download the checkpoint`,
        );
      }
      owner.set(name, file);
    }
  }
  for (const [name, shard] of index) {
    if (owner.get(name) !== files.get(shard)) {
      throw new Error(
        `checkpoint: ${join(dir, INDEX_FILE)} lists tensor "${name}" in ${shard}, ` +
          `but that shard does not contain it. Re-download the checkpoint`,
      );
    }
  }
}

function makeCheckpoint(
  dir: string,
  files: Map<string, SafetensorsFile>,
  owner: Map<string, SafetensorsFile>,
  metadata: Record<string, string>,
): Checkpoint {
  const aliases = findAliases(metadata, new Set(owner.keys()));
  const storedName = (name: string): string => aliases.get(name) ?? name;
  const fileOf = (name: string): SafetensorsFile => {
    const file = owner.get(storedName(name));
    if (!file) {
      throw new Error(
        `checkpoint: tensor "${name}" not found in ${dir} (${owner.size} tensors). Check the ` +
          `name and its prefix, or use resolveWeightName`,
      );
    }
    return file;
  };
  return {
    dir,
    names: [...owner.keys(), ...aliases.keys()],
    metadata,
    aliases,
    has: (name) => owner.has(storedName(name)),
    info: (name) => ({ ...fileOf(name).info(storedName(name)), name }),
    read: (name) => ({ ...fileOf(name).read(storedName(name)), name }),
    readInto: (name, target, offset) => fileOf(name).readInto(storedName(name), target, offset),
    close: () => {
      for (const file of files.values()) file.close();
    },
  };
}

/** Reads every tensor of the checkpoint in `dir`, aliases included (they share the data). */
export function loadCheckpointTensors(dir: string): Map<string, RawTensor> {
  const checkpoint = openCheckpoint(dir);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const name of checkpoint.names) {
      const stored = checkpoint.aliases.get(name);
      const shared = stored === undefined ? undefined : tensors.get(stored);
      tensors.set(name, shared ? { ...shared, name } : checkpoint.read(name));
    }
    return tensors;
  } finally {
    checkpoint.close();
  }
}

/** Prefixes that checkpoints of one model may or may not carry (GPT-2, BLOOM, Llama). */
export const OPTIONAL_PREFIXES = ["model.", "transformer."] as const;

/**
 * Returns the stored name of the first candidate found in `tensors`, or null when none is
 * stored. Each candidate is tried as given, then without its optional prefix, then with the
 * other prefixes. Hub checkpoints of GPT-2 and BLOOM name weights "h.0.attn...", where a
 * freshly saved model has "transformer.h.0.attn...".
 */
export function resolveWeightName(
  tensors: { has(name: string): boolean },
  candidates: readonly string[],
): string | null {
  for (const candidate of candidates) {
    for (const name of nameVariants(candidate)) {
      if (tensors.has(name)) return name;
    }
  }
  return null;
}

function nameVariants(name: string): string[] {
  const variants = [name];
  const prefix = OPTIONAL_PREFIXES.find((p) => name.startsWith(p));
  const bare = prefix ? name.slice(prefix.length) : name;
  if (prefix) variants.push(bare);
  for (const p of OPTIONAL_PREFIXES) {
    if (p !== prefix) variants.push(p + bare);
  }
  return variants;
}
