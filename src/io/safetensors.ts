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
import {
  type TensorInfo,
  elementCount,
  fail,
  knownDTypes,
  parseHeader,
  MAX_HEADER_BYTES,
} from "./safetensors-header.js";

export { type TensorInfo, elementCount } from "./safetensors-header.js";

/** A tensor as stored in a file: dtype name, shape and little-endian bytes. */
export interface RawTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** The tensor to write: `data` must hold exactly shape-product × dtype-size bytes. */
export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: Uint8Array;
}

// fs.readSync reads at most 2 GiB - 1 bytes per call.
const READ_CHUNK_BYTES = 1 << 30;

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
    const dataStart = 8 + headerBytes;
    const { metadata, tensors } = parseHeader(path, headerRaw, fileSize - dataStart);
    return { metadata, tensors, dataStart };
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Returns the validated header entry of `name`; the error for an absent name lists a few. */
  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) {
      fail(
        this.path,
        `tensor "${name}" not found. The file has ${this.tensors.size} tensors` +
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

  /**
   * Reads `target.byteLength` bytes of tensor `name`, starting `offset` bytes into its data,
   * straight into `target` (which may be a view of the wasm memory), with no buffer between.
   */
  readInto(name: string, target: Uint8Array, offset = 0): void {
    const info = this.info(name);
    if (this.fd === null) fail(this.path, `readInto("${name}") after close()`, "Reopen the file");
    const bytes = info.end - info.begin;
    if (!Number.isInteger(offset) || offset < 0 || offset + target.byteLength > bytes) {
      throw new Error(
        `SafetensorsFile.readInto: ${this.path}: bytes ${offset}..${offset + target.byteLength} ` +
          `are outside tensor "${name}" (${bytes} bytes)`,
      );
    }
    readExactly(this.fd, target, this.dataStart + info.begin + offset, this.path);
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
