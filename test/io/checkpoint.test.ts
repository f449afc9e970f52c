// Checkpoint folders: single file, shards through the index, tied-weight aliases, name prefixes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  loadCheckpointTensors,
  openCheckpoint,
  resolveWeightName,
} from "../../src/io/checkpoint.js";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { fixture } from "../helpers/fixtures.js";

const tinyStoriesDir = () => fixture("models/TinyStories-656K");

function withTempDir(body: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "tslora-checkpoint-"));
  try {
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("tied weight absent in bf16 checkpoint", () => {
  const checkpoint = openCheckpoint(tinyStoriesDir());
  try {
    assert.equal(checkpoint.names.length, 20);
    assert.equal(checkpoint.aliases.size, 0);
    assert.equal(checkpoint.has("lm_head.weight"), false);
    assert.equal(checkpoint.has("model.embed_tokens.weight"), true);
    assert.deepEqual(checkpoint.info("model.norm.weight").shape, [128]);
    assert.throws(() => checkpoint.read("lm_head.weight"), /tensor "lm_head.weight" not found/);
  } finally {
    checkpoint.close();
  }
});

test("tied weight alias in f32 resave", () => {
  const dir = fixture("models/TinyStories-656K/fp32-resave");
  const checkpoint = openCheckpoint(dir);
  try {
    assert.deepEqual([...checkpoint.aliases], [["model.embed_tokens.weight", "lm_head.weight"]]);
    assert.equal(checkpoint.has("model.embed_tokens.weight"), true);
    const embed = checkpoint.read("model.embed_tokens.weight");
    const head = checkpoint.read("lm_head.weight");
    assert.equal(embed.name, "model.embed_tokens.weight");
    assert.deepEqual(embed.shape, [2048, 128]);
    assert.deepEqual(embed.data, head.data);
  } finally {
    checkpoint.close();
  }
  const all = loadCheckpointTensors(dir);
  assert.equal(all.size, 21);
  assert.equal(all.get("model.embed_tokens.weight")?.data, all.get("lm_head.weight")?.data);
});

test("sharded checkpoint equals single file", () => {
  withTempDir((dir) => {
    const single = readSafetensors(join(tinyStoriesDir(), "model.safetensors")).tensors;
    const names = [...single.keys()];
    const shards = [names.slice(0, 7), names.slice(7)];
    const weightMap: Record<string, string> = {};
    shards.forEach((shardNames, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(
        join(dir, file),
        shardNames.map((n) => single.get(n)!),
        { format: "pt" },
      );
      for (const n of shardNames) weightMap[n] = file;
    });
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const loaded = loadCheckpointTensors(dir);
    assert.equal(loaded.size, single.size);
    for (const [name, raw] of single) {
      const got = loaded.get(name);
      assert.ok(got, name);
      assert.deepEqual(got.shape, raw.shape);
      assert.deepEqual(got.data, raw.data, name);
    }

    // The index names a tensor that its shard does not contain.
    weightMap["model.norm.weight"] = "model-00001-of-00002.safetensors";
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    assert.ok(shards[1].includes("model.norm.weight"));
    assert.throws(
      () => openCheckpoint(dir),
      /lists tensor "model.norm.weight" in model-00001-of-00002.safetensors, but that shard/,
    );
  });
});

test("missing shard and unsafe shard path", () => {
  withTempDir((dir) => {
    const index = join(dir, "model.safetensors.index.json");
    writeFileSync(index, JSON.stringify({ weight_map: { a: "model-00001-of-00001.safetensors" } }));
    assert.throws(
      () => openCheckpoint(dir),
      /shard model-00001-of-00001.safetensors listed in .* is missing/,
    );
    writeFileSync(index, JSON.stringify({ weight_map: { a: "../outside.safetensors" } }));
    assert.throws(() => openCheckpoint(dir), /tensor "a" maps to "..\/outside.safetensors"/);
    writeFileSync(index, "{ not json");
    assert.throws(() => openCheckpoint(dir), /cannot read the shard index/);
  });
});

test("folder without safetensors weights", () => {
  withTempDir((dir) => {
    assert.throws(
      () => openCheckpoint(dir),
      /no model.safetensors or model.safetensors.index.json/,
    );
    writeFileSync(join(dir, "pytorch_model.bin"), "x");
    assert.throws(() => openCheckpoint(dir), /pytorch_model.bin.*\.bin\) are not supported/);
  });
});

test("resolveWeightName tries prefixes", () => {
  const hubNames = new Set(["h.0.attn.c_attn.weight", "wte.weight"]);
  assert.equal(
    resolveWeightName(hubNames, ["transformer.h.0.attn.c_attn.weight"]),
    "h.0.attn.c_attn.weight",
  );
  const savedNames = new Set(["transformer.wte.weight", "model.norm.weight"]);
  assert.equal(resolveWeightName(savedNames, ["wte.weight"]), "transformer.wte.weight");
  assert.equal(resolveWeightName(savedNames, ["norm.weight"]), "model.norm.weight");
  assert.equal(
    resolveWeightName(savedNames, ["lm_head.weight", "transformer.wte.weight"]),
    "transformer.wte.weight",
  );
  assert.equal(resolveWeightName(savedNames, ["lm_head.weight"]), null);
});
