// Safetensors reading and writing, on the real TinyStories checkpoints and on hand-made files
// that are corrupt in one way each.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  writeSync,
  ftruncateSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SafetensorsFile, readSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { decodeToFloat32, encodeFromFloat32 } from "../../src/io/dtypes.js";
import { fixture } from "../helpers/fixtures.js";

const tinyStories = (file: string) => fixture(`models/TinyStories-656K/${file}`);

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "tslora-safetensors-"));
}

/** Builds a safetensors file from a header object and a data area. */
function buildFile(header: unknown, data: Uint8Array, headerLength?: number): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLength ?? json.byteLength));
  return Buffer.concat([prefix, json, data]);
}

function writeBad(dir: string, name: string, header: unknown, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, buildFile(header, data));
  return path;
}

test("readSafetensors reads the bf16 TinyStories checkpoint", () => {
  const { tensors, metadata } = readSafetensors(tinyStories("model.safetensors"));
  assert.equal(tensors.size, 20);
  assert.deepEqual(metadata, { format: "pt" });
  const embed = tensors.get("model.embed_tokens.weight");
  assert.ok(embed);
  assert.equal(embed.dtype, "BF16");
  assert.deepEqual(embed.shape, [2048, 128]);
  assert.equal(embed.data.byteLength, 2048 * 128 * 2);
  assert.equal(tensors.has("lm_head.weight"), false);
});

test("bf16 and f32 resave decode to equal values", () => {
  // The f32 file is the bf16 one upcast exactly, so decoding both must agree bit for bit.
  const bf16 = readSafetensors(tinyStories("model.safetensors")).tensors;
  const f32 = readSafetensors(tinyStories("fp32-resave/model.safetensors"));
  assert.equal(f32.metadata["model.embed_tokens.weight"], "lm_head.weight");
  let compared = 0;
  for (const [name, raw] of bf16) {
    const storedName = name === "model.embed_tokens.weight" ? "lm_head.weight" : name;
    const other = f32.tensors.get(storedName);
    assert.ok(other, `${storedName} missing from the f32 file`);
    assert.equal(other.dtype, "F32");
    assert.deepEqual(other.shape, raw.shape, name);
    assert.deepEqual(decodeToFloat32(raw.data, raw.dtype), decodeToFloat32(other.data, "F32"));
    compared++;
  }
  assert.equal(compared, 20);
});

test("writeSafetensors round trip keeps order and bytes", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "out.safetensors");
    const weights = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    const tensors = [
      {
        name: "z.weight",
        dtype: "F32" as const,
        shape: [2, 3],
        data: encodeFromFloat32(weights, "F32"),
      },
      {
        name: "1",
        dtype: "BF16" as const,
        shape: [3],
        data: encodeFromFloat32(weights.subarray(0, 3), "BF16"),
      },
      { name: "0", dtype: "I64" as const, shape: [1], data: new Uint8Array(8).fill(7) },
      { name: "empty", dtype: "F16" as const, shape: [0, 4], data: new Uint8Array(0) },
    ];
    writeSafetensors(path, tensors, { format: "pt", note: "round trip" });

    const bytes = readFileSync(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    assert.equal(headerLength % 8, 0, "header length must keep the data 8-byte aligned");
    const headerText = bytes.subarray(8, 8 + headerLength).toString("utf8");
    const keyOrder = [...headerText.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
    assert.deepEqual(keyOrder, ["z.weight", "1", "0", "empty"]);
    assert.match(headerText, /^\{"__metadata__":/);
    assert.match(headerText, / *$/);

    const back = readSafetensors(path);
    assert.deepEqual(back.metadata, { format: "pt", note: "round trip" });
    for (const t of tensors) {
      const got = back.tensors.get(t.name);
      assert.ok(got, t.name);
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual([...got.data], [...t.data]);
    }
    assert.deepEqual(decodeToFloat32(back.tensors.get("z.weight")!.data, "F32"), weights);
    assert.deepEqual(readdirSync(dir), ["out.safetensors"], "no temporary file may remain");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("writeSafetensors rejects bad input, keeps old file", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "keep.safetensors");
    writeFileSync(path, "old contents");
    const bad = [{ name: "w", dtype: "F32" as const, shape: [2, 2], data: new Uint8Array(12) }];
    assert.throws(() => writeSafetensors(path, bad), /tensor "w".*needs 16 bytes, got 12/);
    const duplicate = [
      { name: "w", dtype: "U8" as const, shape: [1], data: new Uint8Array(1) },
      { name: "w", dtype: "U8" as const, shape: [1], data: new Uint8Array(1) },
    ];
    assert.throws(() => writeSafetensors(path, duplicate), /duplicate name/);
    assert.equal(readFileSync(path, "utf8"), "old contents");
    assert.deepEqual(readdirSync(dir), ["keep.safetensors"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("truncated file names the tensor past the end", () => {
  const dir = tempDir();
  try {
    const whole = readFileSync(tinyStories("model.safetensors"));
    const path = join(dir, "truncated.safetensors");
    writeFileSync(path, whole.subarray(0, Math.floor(whole.byteLength / 2)));
    assert.throws(
      () => SafetensorsFile.open(path),
      (err: Error) => {
        assert.match(err.message, /truncated\.safetensors/);
        assert.match(
          err.message,
          /tensor "[^"]+": data_offsets \[\d+, \d+\] end past the data area/,
        );
        assert.match(err.message, /Re-download/);
        return true;
      },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("header length past end of file", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "long-header.safetensors");
    writeFileSync(path, buildFile({}, new Uint8Array(0), 1_000_000));
    assert.throws(
      () => SafetensorsFile.open(path),
      /long-header\.safetensors: header length 1000000 runs past the end of the file \(10 bytes\)/,
    );
    assert.throws(
      () => SafetensorsFile.open(join(dir, "absent.safetensors")),
      /absent\.safetensors: file not found\. Check the path/,
    );
    const tiny = join(dir, "tiny.safetensors");
    writeFileSync(tiny, "abc");
    assert.throws(() => SafetensorsFile.open(tiny), /file has 3 bytes, expected at least 8/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("corrupt headers each give one error", () => {
  const dir = tempDir();
  const cases: [string, unknown, number, RegExp][] = [
    [
      "overlap",
      {
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      },
      12,
      /tensor "b": data_offsets \[4, 12\] overlap tensor "a" \[0, 8\]/,
    ],
    [
      "gap",
      {
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
      },
      12,
      /tensor "b": data_offsets \[8, 12\] leave a gap of bytes \[4, 8\) after tensor "a"/,
    ],
    [
      "unknown-dtype",
      { a: { dtype: "Q4_K", shape: [2], data_offsets: [0, 8] } },
      8,
      /tensor "a": unknown dtype "Q4_K", expected one of BOOL, .*BF16/,
    ],
    [
      "size-mismatch",
      { a: { dtype: "F16", shape: [3], data_offsets: [0, 8] } },
      8,
      /tensor "a": shape \[3\] of F16 needs 6 bytes, but data_offsets \[0, 8\] span 8/,
    ],
    [
      "negative-shape",
      { a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } },
      0,
      /tensor "a": "shape" must be a list of integers >= 0, got \[-1\]/,
    ],
    [
      "reversed-offsets",
      { a: { dtype: "F32", shape: [0], data_offsets: [4, 0] } },
      4,
      /tensor "a": "data_offsets" must be \[begin, end\] with 0 <= begin <= end, got \[4,0\]/,
    ],
    [
      "trailing-bytes",
      { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } },
      8,
      /the tensors cover 4 bytes but the data area after the header has 8 bytes/,
    ],
    [
      "bad-metadata",
      { __metadata__: { format: 1 } },
      0,
      /"__metadata__"\."format" must be a string, got 1/,
    ],
    ["not-an-object", { a: "F32" }, 0, /tensor "a": header entry must be an object/],
  ];
  try {
    for (const [name, header, dataBytes, expected] of cases) {
      const path = writeBad(dir, `${name}.safetensors`, header, new Uint8Array(dataBytes));
      assert.throws(() => SafetensorsFile.open(path), expected, name);
      assert.throws(() => SafetensorsFile.open(path), new RegExp(`${name}\\.safetensors`), name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("invalid JSON header", () => {
  const dir = tempDir();
  try {
    const path = join(dir, "json.safetensors");
    const text = Buffer.from('{"a": {"dtype": "F32",', "utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(text.byteLength));
    writeFileSync(path, Buffer.concat([prefix, text]));
    assert.throws(() => SafetensorsFile.open(path), /json\.safetensors: header is not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("reads a tensor beyond 2 GiB offset", () => {
  // A sparse file: a 2 GiB + 8 byte tensor of zeros followed by a small one, so that the small
  // tensor's position does not fit in an int32. Only the small tensor is read.
  const dir = tempDir();
  try {
    const path = join(dir, "big.safetensors");
    const big = 2 ** 31 + 8;
    const header = {
      big: { dtype: "U8", shape: [big], data_offsets: [0, big] },
      tail: { dtype: "F32", shape: [2], data_offsets: [big, big + 8] },
    };
    const json = Buffer.from(JSON.stringify(header), "utf8");
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.byteLength));
    const fd = openSync(path, "w");
    try {
      writeSync(fd, Buffer.concat([prefix, json]));
      const tail = encodeFromFloat32(Float32Array.of(1.5, -2.25), "F32");
      writeSync(fd, tail, 0, tail.byteLength, 8 + json.byteLength + big);
      ftruncateSync(fd, 8 + json.byteLength + big + 8);
    } finally {
      closeSync(fd);
    }
    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual(file.info("big").shape, [big]);
      const tail = file.read("tail");
      assert.deepEqual(decodeToFloat32(tail.data, tail.dtype), Float32Array.of(1.5, -2.25));
    } finally {
      file.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(existsSync(dir), false);
});
