// Memory of a forward pass without a tape. Each block's intermediates are freed when the block
// returns (runBlocks), so the step arena contains the same few tensors at any depth. The heap
// returns to its size once the step ends, and the outputs equal those of a taped forward.
// Also: weights converted between dtypes while loading, across the loader's read chunks.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad, Tensor } from "../../src/engine/index.js";
import { getArena, getHeap } from "../../src/engine/memory.js";
import { encodeBf16 } from "../../src/engine/tensor.js";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import type { CausalLM } from "../../src/models/types.js";
import { loadModelFromDir } from "../../src/models/weights.js";
import { writeTinyModel, type TinyFamily } from "../helpers/tiny-models.js";

const root = mkdtempSync(join(tmpdir(), "tslora-inference-memory-"));
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;

const LAYER_KEY: Record<"gpt2" | "llama" | "bloom", string> = {
  gpt2: "n_layer",
  llama: "num_hidden_layers",
  bloom: "n_layer",
};

function modelWithLayers(family: "gpt2" | "llama" | "bloom", layers: number): CausalLM {
  const dir = join(root, `${family}-${folders++}`);
  writeTinyModel(dir, family, { seed: 3, config: { [LAYER_KEY[family]]: layers } });
  return loadModelFromDir(dir, "f32");
}

const IDS = Int32Array.from({ length: 24 }, (_, i) => (i * 7 + 3) % 64);

interface Pass {
  hidden: Float32Array;
  /** Arena bytes in use when the forward returned (the tiny models fit in one chunk). */
  arenaBytes: number;
}

function forwardPass(model: CausalLM, taped: boolean): Pass {
  endStep();
  const run = (): Pass => {
    const hidden = model.forward(Tensor.from(IDS, [2, 12], "i32"));
    return { hidden: hidden.toFloat32Array(), arenaBytes: getArena().mark().used };
  };
  const pass = taped ? run() : noGrad(run);
  endStep();
  return pass;
}

for (const family of ["gpt2", "llama", "bloom"] as const) {
  test(`${family}: untaped forward frees each block's intermediates`, () => {
    const shallow = modelWithLayers(family, 2);
    const deep = modelWithLayers(family, 8);
    // A first pass creates what lives on (the arena chunk, the GEMM packing buffers).
    forwardPass(deep, true);
    const heapBefore = getHeap().bytesInUse;
    const shallowPass = forwardPass(shallow, false);
    const deepPass = forwardPass(deep, false);
    const deepTaped = forwardPass(deep, true);
    // Without a tape the arena contains the embedding output and the final norm, at any depth.
    assert.equal(deepPass.arenaBytes, shallowPass.arenaBytes);
    // With a tape but no trainable tensor, no backward saves anything, so freeUnsaved frees
    // each block's intermediates too (free-unsaved.test.ts covers training).
    assert.equal(deepTaped.arenaBytes, deepPass.arenaBytes);
    assert.deepEqual(deepPass.hidden, deepTaped.hidden);
    // Every scratch block is back on the free list once the step has ended.
    assert.equal(getHeap().bytesInUse, heapBefore);
    shallow.dispose();
    deep.dispose();
  });
}

function tinyDir(family: TinyFamily, options: Parameters<typeof writeTinyModel>[2]): string {
  const dir = join(root, `${family}-${folders++}`);
  writeTinyModel(dir, family, { seed: 5, ...options });
  return dir;
}

// 40,000 tokens × 32 channels: an embedding of 1.28M values, more than one read chunk.
const BIG_VOCAB = { vocab_size: 40000 };

function embeddingOf(model: CausalLM): Tensor {
  const found = model.namedParameters().find(([name]) => name.endsWith("embed_tokens.weight"));
  assert.ok(found !== undefined, "the llama model has model.embed_tokens.weight");
  return found[1];
}

test("bf16 to f32 across read chunks", () => {
  const dir = tinyDir("llama", { dtype: "BF16", config: BIG_VOCAB });
  const stored = readSafetensors(join(dir, "model.safetensors")).tensors;
  const raw = stored.get("model.embed_tokens.weight");
  assert.ok(raw !== undefined);
  const model = loadModelFromDir(dir, "f32");
  assert.deepEqual(embeddingOf(model).f32(), decodeToFloat32(raw.data, raw.dtype));
  model.dispose();
});

test("f32 to bf16 across read chunks", () => {
  const dir = tinyDir("llama", { config: BIG_VOCAB });
  const stored = readSafetensors(join(dir, "model.safetensors")).tensors;
  const raw = stored.get("model.embed_tokens.weight");
  assert.ok(raw !== undefined);
  const model = loadModelFromDir(dir, "bf16");
  const values = decodeToFloat32(raw.data, raw.dtype);
  const expected = new Uint16Array(values.length);
  encodeBf16(values, expected);
  assert.deepEqual(embeddingOf(model).u16(), expected);
  model.dispose();
});
