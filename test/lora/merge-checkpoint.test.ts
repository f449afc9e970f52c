// `tslora merge`: the merged folder against PEFT's merge_and_unload() checkpoint.
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad } from "../../src/engine/index.js";
import { runMerge } from "../../src/cli/merge.js";
import { decodeToFloat32 } from "../../src/io/dtypes.js";
import { readSafetensors, SafetensorsFile, writeSafetensors } from "../../src/io/safetensors.js";
import { addLoraDelta } from "../../src/lora/merge.js";
import { mergeCheckpoint } from "../../src/lora/merge-checkpoint.js";
import { loadModelFromDir } from "../../src/models/index.js";
import { maxAbsDiff } from "../helpers/assert.js";
import { fixture } from "../helpers/fixtures.js";
import {
  logitsOf,
  maxLogitError,
  readJson,
  referenceBatch,
  type ReferenceAdapter,
} from "./helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-merge-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function headerNames(path: string): string[] {
  const file = SafetensorsFile.open(path);
  try {
    return file.names;
  } finally {
    file.close();
  }
}

for (const arch of ["gpt2", "llama"] as const) {
  test(`${arch} merged folder matches PEFT`, () => {
    const out = join(scratch, `${arch}-merged`);
    const summary = mergeCheckpoint({
      modelDir: fixture(`reference/${arch}/model`),
      adapterDir: fixture(`reference/${arch}/adapter`),
      outDir: out,
    });
    assert.equal(summary.mergedWeights, arch === "gpt2" ? 2 : 4);
    const ours = readSafetensors(join(out, "model.safetensors"));
    const peft = readSafetensors(fixture(`reference/${arch}/merged/model.safetensors`));
    assert.deepEqual(ours.metadata, { format: "pt" });
    assert.deepEqual(
      headerNames(join(out, "model.safetensors")),
      headerNames(fixture(`reference/${arch}/merged/model.safetensors`)),
    );
    for (const [name, t] of peft.tensors) {
      const mine = ours.tensors.get(name);
      assert.ok(mine, `${name} missing`);
      assert.equal(mine.dtype, t.dtype, name);
      assert.deepEqual(mine.shape, t.shape, name);
      const a = decodeToFloat32(mine.data, mine.dtype, name);
      const b = decodeToFloat32(t.data, t.dtype, name);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      assert.ok(worst <= 1e-6, `${name}: error ${worst}`);
    }
    for (const file of ["config.json", "generation_config.json"]) {
      assert.equal(
        readFileSync(join(out, file), "utf8"),
        readFileSync(fixture(`reference/${arch}/model/${file}`), "utf8"),
        file,
      );
    }

    const model = loadModelFromDir(out, "auto");
    const batch = referenceBatch(arch);
    const ref = readJson<ReferenceAdapter>(`reference/${arch}/adapter.json`);
    noGrad(() => {
      const error = maxLogitError(logitsOf(model, batch), ref.merged.logits, batch.mask);
      assert.ok(error <= 1e-4, `merged model logits error ${error}`);
    });
    endStep();
  });
}

test("bf16 merge stays bf16", () => {
  const modelDir = fixture("models/TinyStories-656K");
  const adapterDir = fixture("reference/tinystories/adapter-final");
  const out = join(scratch, "stories-merged");
  const summary = mergeCheckpoint({ modelDir, adapterDir, outDir: out });
  assert.equal(summary.mergedWeights, 8);
  for (const file of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
    assert.ok(existsSync(join(out, file)), `${file} copied`);
  }
  const base = readSafetensors(join(modelDir, "model.safetensors")).tensors;
  const merged = readSafetensors(join(out, "model.safetensors")).tensors;
  const adapter = readSafetensors(join(adapterDir, "adapter_model.safetensors")).tensors;
  assert.deepEqual([...merged.keys()], [...base.keys()]);
  const name = "model.layers.1.self_attn.k_proj";
  const w = base.get(`${name}.weight`);
  const m = merged.get(`${name}.weight`);
  const a = adapter.get(`base_model.model.${name}.lora_A.weight`);
  const b = adapter.get(`base_model.model.${name}.lora_B.weight`);
  assert.ok(w, "base weight");
  assert.ok(m, "merged weight");
  assert.ok(a, "lora_A");
  assert.ok(b, "lora_B");
  assert.equal(m.dtype, "BF16");
  // Independent f32 merge, then rounding to bf16 (nearest even) by hand.
  const expected = decodeToFloat32(w.data, w.dtype);
  addLoraDelta(
    expected,
    "outIn",
    128,
    64,
    {
      A: decodeToFloat32(a.data, a.dtype),
      B: decodeToFloat32(b.data, b.dtype),
      r: 8,
      scaling: 2,
    },
    1,
  );
  const got = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength);
  const bits = new Uint32Array(new Float32Array(expected).buffer);
  for (let i = 0; i < expected.length; i++) {
    const x = bits[i];
    const rounded = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    assert.equal(got.getUint16(i * 2, true), rounded & 0xffff, `element ${i}`);
  }
  assert.deepEqual(merged.get("model.norm.weight")?.data, base.get("model.norm.weight")?.data);
});

test("merge keeps a non-empty folder without --force", async () => {
  const out = join(scratch, "occupied");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "keep.txt"), "mine");
  const args = [
    "--model",
    fixture("reference/llama/model"),
    "--adapter",
    fixture("reference/llama/adapter"),
    "--out",
    out,
  ];
  await assert.rejects(
    runMerge(args),
    /is not empty; choose another output folder \(--out\) or pass --force/,
  );
  assert.equal(readFileSync(join(out, "keep.txt"), "utf8"), "mine");
  assert.equal(await runMerge([...args, "--force"]), 0);
  assert.ok(!existsSync(join(out, "keep.txt")), "--force replaces the folder");
  assert.ok(existsSync(join(out, "model.safetensors")));
});

/** Copies a fixture folder into the scratch folder and returns the copy's path. */
function copyFolder(from: string, name: string): string {
  const to = join(scratch, name);
  cpSync(from, to, { recursive: true });
  return to;
}

/** Returns every file under `dir` with its bytes, by path relative to `dir`. */
function folderBytes(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (statSync(path).isFile()) files.set(name, readFileSync(path));
  }
  return files;
}

test("merge --force rejects an input folder as output", async () => {
  const model = copyFolder(fixture("reference/llama/model"), "input-model");
  const runs = join(scratch, "runs");
  const adapter = copyFolder(fixture("reference/llama/adapter"), "runs/adapter");
  const before = { model: folderBytes(model), adapter: folderBytes(adapter) };
  const cases: [string, RegExp][] = [
    [adapter, /output folder .*adapter is the adapter folder/],
    [model, /output folder .*input-model is the model folder/],
    [runs, /output folder .*runs contains the adapter folder/],
  ];
  for (const [out, message] of cases) {
    const args = ["--model", model, "--adapter", adapter, "--out", out, "--force"];
    await assert.rejects(runMerge(args), message);
    assert.throws(
      () => mergeCheckpoint({ modelDir: model, adapterDir: adapter, outDir: out, force: true }),
      /would delete it; choose another output folder/,
    );
  }
  assert.deepEqual(folderBytes(model), before.model);
  assert.deepEqual(folderBytes(adapter), before.adapter);

  // A full folder inside the adapter folder, as a run's checkpoints/ is, is not replaced.
  const checkpoints = join(adapter, "checkpoints");
  mkdirSync(join(checkpoints, "step-000010"), { recursive: true });
  writeFileSync(join(checkpoints, "latest"), "step-000010\n");
  await assert.rejects(
    runMerge(["--model", model, "--adapter", adapter, "--out", checkpoints, "--force"]),
    /output folder .*checkpoints is inside the adapter folder .* and not empty/,
  );
  assert.equal(readFileSync(join(checkpoints, "latest"), "utf8"), "step-000010\n");

  // Nor is the current folder.
  const workingFolder = join(scratch, "working-folder");
  mkdirSync(workingFolder);
  writeFileSync(join(workingFolder, "notes.txt"), "mine");
  const cwd = process.cwd();
  process.chdir(workingFolder);
  try {
    await assert.rejects(
      runMerge(["--model", model, "--adapter", adapter, "--out", ".", "--force"]),
      /output folder \S*working-folder is or contains the current folder/,
    );
  } finally {
    process.chdir(cwd);
  }
  assert.equal(readFileSync(join(workingFolder, "notes.txt"), "utf8"), "mine");

  // A new folder inside the adapter folder deletes nothing of it.
  const inside = join(adapter, "merged");
  assert.equal(await runMerge(["--model", model, "--adapter", adapter, "--out", inside]), 0);
  assert.ok(existsSync(join(inside, "model.safetensors")));
  assert.ok(existsSync(join(checkpoints, "latest")));
});

test("failed merge leaves no output", () => {
  const out = join(scratch, "never");
  assert.throws(
    () =>
      mergeCheckpoint({
        modelDir: fixture("reference/gpt2/model"),
        adapterDir: fixture("reference/llama/adapter"),
        outDir: out,
      }),
    /does not fit the model/,
  );
  assert.ok(!existsSync(out));
});

/** Writes a copy of a model folder with renamed tensors, split over `shards` files. */
function rewriteModel(
  from: string,
  to: string,
  rename: (name: string) => string,
  shards: number,
): void {
  mkdirSync(to, { recursive: true });
  for (const file of ["config.json", "generation_config.json"]) {
    writeFileSync(join(to, file), readFileSync(join(from, file)));
  }
  const tensors = [...readSafetensors(join(from, "model.safetensors")).tensors.values()].map(
    (t) => ({ ...t, name: rename(t.name) }),
  );
  if (shards === 1) {
    writeSafetensors(join(to, "model.safetensors"), tensors, { format: "pt" });
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-0000${s + 1}-of-0000${shards}.safetensors`;
    const part = tensors.filter((_, i) => i % shards === s);
    for (const t of part) weightMap[t.name] = file;
    writeSafetensors(join(to, file), part, { format: "pt" });
  }
  const index = { metadata: { total_size: 0 }, weight_map: weightMap };
  writeFileSync(join(to, "model.safetensors.index.json"), JSON.stringify(index));
}

/** Returns every tensor of a folder's safetensors files by name, as f32 values. */
function folderTensors(dir: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".safetensors"))) {
    for (const [name, t] of readSafetensors(join(dir, file)).tensors) {
      out.set(name, decodeToFloat32(t.data, t.dtype, name));
    }
  }
  return out;
}

test("sharded checkpoint merges shard by shard", () => {
  const modelDir = join(scratch, "llama-sharded");
  rewriteModel(fixture("reference/llama/model"), modelDir, (n) => n, 2);
  const out = join(scratch, "llama-sharded-merged");
  const summary = mergeCheckpoint({
    modelDir,
    adapterDir: fixture("reference/llama/adapter"),
    outDir: out,
  });
  assert.deepEqual(summary.files, [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
  ]);
  assert.ok(existsSync(join(out, "model.safetensors.index.json")));
  const ours = folderTensors(out);
  const peft = folderTensors(fixture("reference/llama/merged"));
  assert.equal(ours.size, peft.size);
  for (const [name, values] of peft) {
    const mine = ours.get(name);
    assert.ok(mine, `${name} missing`);
    assert.ok(maxAbsDiff(mine, values) <= 1e-6, `${name} differs`);
  }
});

test("Hub-style GPT-2 names stay unprefixed", () => {
  const modelDir = join(scratch, "gpt2-hub");
  rewriteModel(
    fixture("reference/gpt2/model"),
    modelDir,
    (n) => n.replace(/^transformer\./, ""),
    1,
  );
  const out = join(scratch, "gpt2-hub-merged");
  const summary = mergeCheckpoint({
    modelDir,
    adapterDir: fixture("reference/gpt2/adapter"),
    outDir: out,
  });
  assert.equal(summary.mergedWeights, 2);
  const ours = folderTensors(out);
  assert.ok(ours.has("h.0.attn.c_attn.weight"));
  for (const [name, values] of folderTensors(fixture("reference/gpt2/merged"))) {
    const mine = ours.get(name.replace(/^transformer\./, ""));
    assert.ok(mine, `${name} missing`);
    assert.ok(maxAbsDiff(mine, values) <= 1e-6, `${name} differs`);
  }
});
