// Validation of a safetensors header: the JSON, every entry's dtype, shape and data_offsets, and
// that the offsets tile the data area exactly. Nothing in a header is trusted before this.
import { SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, type SafetensorsDType } from "./dtypes.js";

/** A header entry after validation; `begin`/`end` are byte offsets into the data area. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

// The Rust safetensors crate rejects headers above 100 MB; a larger N means a corrupt file.
export const MAX_HEADER_BYTES = 100_000_000;
export const FIX_CORRUPT = "Re-download the file or save it again with a safetensors writer";

/** Throws an error that names the file, what is wrong with it and how to fix it. */
export function fail(path: string, message: string, fix = FIX_CORRUPT): never {
  throw new Error(`safetensors: ${path}: ${message}. ${fix}`);
}

export function knownDTypes(): string {
  return Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Returns the number of elements of a shape; the caller has checked the dimensions. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function parseEntry(path: string, name: string, value: unknown): TensorInfo {
  const where = `tensor "${name}"`;
  if (!isPlainObject(value)) {
    fail(path, `${where}: header entry must be an object, got ${JSON.stringify(value)}`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== "string") {
    fail(path, `${where}: "dtype" must be a string, got ${JSON.stringify(dtype)}`);
  }
  if (!isSafetensorsDType(dtype)) {
    fail(
      path,
      `${where}: unknown dtype "${dtype}", expected one of ${knownDTypes()}`,
      "Convert the tensor to a supported dtype (F32, F16 or BF16 for weights) and save again",
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(path, `${where}: "shape" must be a list of integers >= 0, got ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    fail(
      path,
      `${where}: "data_offsets" must be [begin, end] with 0 <= begin <= end, ` +
        `got ${JSON.stringify(offsets)}`,
    );
  }
  const info: TensorInfo = { name, dtype, shape, begin: offsets[0], end: offsets[1] };
  const expected = elementCount(shape) * SAFETENSORS_DTYPE_BYTES[dtype];
  if (info.end - info.begin !== expected) {
    fail(
      path,
      `${where}: shape [${shape.join(", ")}] of ${dtype} needs ${expected} bytes, ` +
        `but data_offsets [${info.begin}, ${info.end}] span ${info.end - info.begin}`,
    );
  }
  return info;
}

function parseMetadata(path: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) {
    fail(path, `"__metadata__" must be an object of strings, got ${JSON.stringify(value)}`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      fail(path, `"__metadata__"."${key}" must be a string, got ${JSON.stringify(v)}`);
    }
  }
  return value as Record<string, string>;
}

/** Checks that the entries, sorted by offset, tile [0, dataBytes) with no gap and no overlap. */
function checkOffsets(path: string, infos: TensorInfo[], dataBytes: number): void {
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let previous: TensorInfo | null = null;
  let position = 0;
  for (const info of sorted) {
    const range = `data_offsets [${info.begin}, ${info.end}]`;
    if (info.begin < position && previous) {
      fail(
        path,
        `tensor "${info.name}": ${range} overlap tensor "${previous.name}" ` +
          `[${previous.begin}, ${previous.end}]`,
      );
    }
    if (info.begin > position) {
      const after = previous ? `after tensor "${previous.name}"` : "at the start of the data";
      fail(
        path,
        `tensor "${info.name}": ${range} leave a gap of bytes [${position}, ` +
          `${info.begin}) ${after}`,
      );
    }
    if (info.end > dataBytes) {
      fail(
        path,
        `tensor "${info.name}": ${range} end past the data area of ${dataBytes} bytes ` +
          `(the file is truncated or the header is wrong)`,
      );
    }
    position = info.end;
    previous = info;
  }
  if (position !== dataBytes) {
    fail(
      path,
      `the tensors cover ${position} bytes but the data area after the header has ` +
        `${dataBytes} bytes`,
    );
  }
}

function parseHeaderJson(path: string, raw: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    fail(path, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) {
    fail(path, `header must start with "{", got ${JSON.stringify(text.slice(0, 20))}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    fail(path, `header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(parsed)) fail(path, "header JSON must be an object");
  return parsed;
}

/**
 * Parses and validates the header bytes of `path`, whose data area after the header has
 * `dataBytes` bytes. Throws an error naming the file and the tensor for any inconsistency.
 */
export function parseHeader(
  path: string,
  raw: Uint8Array,
  dataBytes: number,
): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  const header = parseHeaderJson(path, raw);
  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") metadata = parseMetadata(path, value);
    else tensors.set(name, parseEntry(path, name, value));
  }
  checkOffsets(path, [...tensors.values()], dataBytes);
  return { metadata, tensors };
}
