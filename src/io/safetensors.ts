// Safetensors reader and writer. File layout: an 8-byte little-endian u64 N, an N-byte UTF-8
// JSON header, then the data area. The header maps each tensor name to
// {dtype, shape, data_offsets: [begin, end]}, offsets relative to the data area, plus an optional
// "__metadata__" object of strings. The reader trusts nothing in the header: it checks the
// header size against the file size, the JSON, every dtype and shape, and that the offsets tile
// the data area exactly (sorted, no overlap, no gap). Tensors are read one at a time with
// fs.readSync, so files larger than 2 GiB work and no mmap is needed.
import { constants as bufferConstants } from "node:buffer";
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { writeAll, writeFileAtomicWith } from "./atomic.js";
import { SAFETENSORS_DTYPE_BYTES, isSafetensorsDType, type SafetensorsDType } from "./dtypes.js";

/** A tensor as stored in a file: dtype name, shape and little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** A header entry after validation; `begin`/`end` are byte offsets into the data area. */
export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** The tensor to write: `data` must hold exactly shape-product × dtype-size bytes. */
export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: Uint8Array;
}

// The Rust safetensors crate rejects headers above 100 MB; a larger N means a corrupt file.
const MAX_HEADER_BYTES = 100_000_000;
// fs.readSync reads at most 2 GiB - 1 bytes per call.
const READ_CHUNK_BYTES = 1 << 30;
const FIX_CORRUPT = "Re-download the file or save it again with a safetensors writer";

function fail(path: string, message: string, fix = FIX_CORRUPT): never {
  throw new Error(`safetensors: ${path}: ${message}. ${fix}`);
}

function knownDTypes(): string {
  return Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readExactly(fd: number, target: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(READ_CHUNK_BYTES, target.byteLength - done);
    const n = readSync(fd, target, done, length, position + done);
    if (n === 0) {
      fail(path, `unexpected end of file at byte ${position + done}, expected ${length} more`);
    }
    done += n;
  }
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

/**
 * An open safetensors file with a validated header. Read tensors one by one with `read`, and
 * call `close` when done (or use `readSafetensors` to read everything at once).
 */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Tensor entries by name. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Byte position of the data area in the file (8 + header size). */
  readonly dataStart: number;
  private fd: number | null;

  private constructor(
    path: string,
    fd: number,
    metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>,
    dataStart: number,
  ) {
    this.path = path;
    this.fd = fd;
    this.metadata = metadata;
    this.tensors = tensors;
    this.dataStart = dataStart;
  }

  /** Opens `path` and validates its header; throws a descriptive error for a corrupt file. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, "r");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT") throw err;
      fail(path, "file not found", "Check the path, or download the checkpoint again");
    }
    try {
      const { metadata, tensors, dataStart } = SafetensorsFile.readHeader(path, fd);
      return new SafetensorsFile(path, fd, metadata, tensors, dataStart);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private static readHeader(
    path: string,
    fd: number,
  ): { metadata: Record<string, string>; tensors: Map<string, TensorInfo>; dataStart: number } {
    const fileSize = fstatSync(fd).size;
    if (fileSize < 8) {
      fail(path, `file has ${fileSize} bytes, expected at least 8 (the header length)`);
    }
    const prefix = new Uint8Array(8);
    readExactly(fd, prefix, 0, path);
    const headerBig = new DataView(prefix.buffer).getBigUint64(0, true);
    if (headerBig > BigInt(fileSize - 8)) {
      fail(
        path,
        `header length ${headerBig} runs past the end of the file (${fileSize} bytes), so ` +
          `the file is truncated or is not a safetensors file`,
      );
    }
    const headerBytes = Number(headerBig);
    if (headerBytes > MAX_HEADER_BYTES) {
      fail(path, `header length ${headerBytes} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
    }
    if (headerBytes < 2) {
      fail(path, `header length ${headerBytes} is too short for a JSON object`);
    }
    const headerRaw = new Uint8Array(headerBytes);
    readExactly(fd, headerRaw, 8, path);
    const header = parseHeaderJson(path, headerRaw);

    let metadata: Record<string, string> = {};
    const tensors = new Map<string, TensorInfo>();
    for (const [name, value] of Object.entries(header)) {
      if (name === "__metadata__") metadata = parseMetadata(path, value);
      else tensors.set(name, parseEntry(path, name, value));
    }
    const dataStart = 8 + headerBytes;
    checkOffsets(path, [...tensors.values()], fileSize - dataStart);
    return { metadata, tensors, dataStart };
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Returns the validated header entry of `name`, or throws an error that lists the first names in the file. */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) {
      fail(
        this.path,
        `tensor "${name}" not found; the file has ${this.tensors.size} tensors` +
          sampleNames(this.names),
        "Check the tensor name (and its prefix) against the checkpoint",
      );
    }
    return info;
  }

  /** Reads one tensor's bytes into a new buffer. */
  read(name: string): RawTensor {
    const info = this.info(name);
    if (this.fd === null) fail(this.path, `read("${name}") after close()`, "Reopen the file");
    const bytes = info.end - info.begin;
    if (bytes > bufferConstants.MAX_LENGTH) {
      fail(
        this.path,
        `tensor "${name}" has ${bytes} bytes, more than the ${bufferConstants.MAX_LENGTH} bytes ` +
          `one buffer can take in this Node.js`,
        "Use a smaller model: its weights must also fit the 4 GiB wasm32 memory",
      );
    }
    const data = new Uint8Array(bytes);
    readExactly(this.fd, data, this.dataStart + info.begin, this.path);
    return { name, dtype: info.dtype, shape: [...info.shape], data };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function sampleNames(names: string[]): string {
  if (names.length === 0) return "";
  const shown = names.slice(0, 8).map((n) => `"${n}"`);
  return ` (${shown.join(", ")}${names.length > 8 ? ", ..." : ""})`;
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

/** Reads every tensor of a safetensors file after validating its header. */
export function readSafetensors(path: string): {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
} {
  const file = SafetensorsFile.open(path);
  try {
    const tensors = new Map<string, RawTensor>();
    for (const name of file.names) tensors.set(name, file.read(name));
    return { tensors, metadata: { ...file.metadata } };
  } finally {
    file.close();
  }
}

function checkTensorToWrite(path: string, t: TensorToWrite, seen: Set<string>): void {
  const where = `writeSafetensors: ${path}: tensor "${t.name}"`;
  if (t.name === "__metadata__" || t.name.length === 0) {
    throw new Error(`${where}: invalid name. Use a non-empty name other than "__metadata__"`);
  }
  if (seen.has(t.name)) throw new Error(`${where}: duplicate name. Give each tensor one entry`);
  seen.add(t.name);
  if (!isSafetensorsDType(t.dtype)) {
    throw new Error(`${where}: unknown dtype "${t.dtype}", expected one of ${knownDTypes()}`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: shape [${t.shape.join(", ")}] must contain integers >= 0`);
  }
  const expected = elementCount(t.shape) * SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (t.data.byteLength !== expected) {
    throw new Error(
      `${where}: shape [${t.shape.join(", ")}] of ${t.dtype} needs ${expected} bytes, ` +
        `got ${t.data.byteLength}`,
    );
  }
}

/** Builds the padded header bytes; keys are written in the caller's order. */
function encodeHeader(tensors: readonly TensorToWrite[], metadata: Record<string, string>): Buffer {
  // Built as text rather than through one object, because JavaScript objects move keys that
  // look like integers ("0", "1") to the front and the caller's order must be kept.
  const parts: string[] = [];
  if (Object.keys(metadata).length > 0) {
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const t of tensors) {
    const end = offset + t.data.byteLength;
    const entry = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, end] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  // The format allows trailing spaces in the header. Padding it to a multiple of 8 aligns the
  // data area, so readers can view it as f32 or f64 arrays without copying.
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return header;
}

/**
 * Writes tensors to a safetensors file in the given order, atomically: an existing file at
 * `path` is replaced only after the new one is complete.
 */
export function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = {},
): void {
  const seen = new Set<string>();
  for (const t of tensors) checkTensorToWrite(path, t, seen);
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== "string") {
      throw new Error(
        `writeSafetensors: ${path}: metadata "${key}" must be a string, got ` +
          `${JSON.stringify(value)}. Convert metadata values to strings`,
      );
    }
  }
  const header = encodeHeader(tensors, metadata);
  writeFileAtomicWith(path, (fd) => {
    writeAll(fd, header);
    for (const t of tensors) writeAll(fd, t.data);
  });
}
