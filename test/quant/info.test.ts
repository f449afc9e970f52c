import assert from "node:assert/strict";
import { test } from "node:test";
import { describeModel, formatInfo } from "../../src/cli/info.js";
import {
  disposeQuantized,
  loadModelFromDir,
  type QuantizeSummary,
} from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

for (const kind of ["int8", "nf4"] as const) {
  test(`info --quantize ${kind} matches the loader`, () => {
    const dir = fixture("models/TinyStories-656K");
    const info = describeModel(dir, "auto", kind);
    const summary: QuantizeSummary = { kind, layers: 0, bytesBefore: 0, bytesAfter: 0 };
    const model = loadModelFromDir(dir, "auto", { quantize: kind, summary });
    assert.equal(info.quantization?.kind, kind);
    assert.equal(info.quantization?.layers, summary.layers);
    assert.equal(info.quantization?.bytesBefore, summary.bytesBefore);
    // The loader rounds each absmax code array up to whole 4-byte words.
    const after = info.quantization?.bytesAfter ?? 0;
    assert.ok(Math.abs(after - summary.bytesAfter) <= 4 * summary.layers, `${after}`);
    assert.match(formatInfo(info), new RegExp(`quantized: +${kind}: 14 block linear weights`));
    disposeQuantized(model);
    model.dispose();
  });
}

test("info without --quantize has no quantization", () => {
  const info = describeModel(fixture("models/TinyStories-656K"));
  assert.equal(info.quantization, null);
  assert.doesNotMatch(formatInfo(info), /quantized/);
});

test("info sizes the KV cache for the full context", () => {
  // TinyStories-656K: 2 layers, 4 KV heads of 16, max_position_embeddings 512.
  const info = describeModel(fixture("models/TinyStories-656K"));
  assert.equal(info.kvCacheBytesPerToken, 2 * 2 * 4 * 16 * 4);
  assert.match(
    formatInfo(info),
    /KV cache: +512\.0 KiB per sequence of 512 tokens \(the full context\)/,
  );
});
