// Adapter files: byte-exact PEFT output, round trips, and the strict loader's one error.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { endStep, noGrad } from "../../src/engine/index.js";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { applyLora, loadAdapter, saveAdapter } from "../../src/lora/index.js";
import { Rng } from "../../src/engine/random.js";
import { fixture } from "../helpers/fixtures.js";
import {
  loadReferenceModel,
  logitsOf,
  referenceBatch,
  type AdapterDir,
  type Arch,
} from "./helpers.js";

const scratch = mkdtempSync(join(tmpdir(), "tslora-lora-io-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const CASES: [Arch, AdapterDir][] = [
  ["gpt2", "adapter"],
  ["gpt2", "adapter-all-linear"],
  ["llama", "adapter"],
  ["llama", "adapter-all-linear"],
];

for (const [arch, dir] of CASES) {
  test(`${arch} ${dir}: saved file equals PEFT's`, () => {
    const source = fixture(`reference/${arch}/${dir}`);
    const model = loadReferenceModel(arch);
    loadAdapter(model, source);
    const out = join(scratch, `${arch}-${dir}`);
    saveAdapter(model, out);
    // Same tensors, same header order, same padding: the files are identical.
    const ours = readFileSync(join(out, "adapter_model.safetensors"));
    const peft = readFileSync(join(source, "adapter_model.safetensors"));
    assert.equal(ours.readBigUInt64LE(0), peft.readBigUInt64LE(0), "header length");
    const headerEnd = 8 + Number(peft.readBigUInt64LE(0));
    assert.equal(
      ours.subarray(8, headerEnd).toString("utf8"),
      peft.subarray(8, headerEnd).toString("utf8"),
    );
    assert.ok(ours.equals(peft), "tensor data differs");
  });
}

test("own adapter round trip gives identical logits", () => {
  const batch = referenceBatch("llama");
  const trained = loadReferenceModel("llama");
  applyLora(
    trained,
    { r: 2, lora_alpha: 4, target_modules: ["q_proj", "down_proj"], init_lora_weights: false },
    { rng: new Rng(7) },
  );
  const out = join(scratch, "own");
  saveAdapter(trained, out, { baseModelNameOrPath: "../model" });
  const fresh = loadReferenceModel("llama");
  loadAdapter(fresh, out);
  noGrad(() => {
    const a = logitsOf(trained, batch);
    const b = logitsOf(fresh, batch);
    assert.deepEqual(b, a);
  });
  endStep();
  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.equal(config.base_model_name_or_path, "../model");
  assert.equal(config.inference_mode, true);
  assert.deepEqual(config.target_modules, ["down_proj", "q_proj"]);
  const names = [...readSafetensors(join(out, "adapter_model.safetensors")).tensors.keys()];
  assert.deepEqual(names, [...names].sort(), "keys in sorted order");
});

/** Copies a fixture adapter into a scratch folder, applying edits to config and tensors. */
function badAdapter(
  name: string,
  edit: {
    config?: (c: Record<string, unknown>) => void;
    tensors?: (t: { name: string; dtype: "F32"; shape: number[]; data: Uint8Array }[]) => void;
  },
): string {
  const source = fixture("reference/llama/adapter");
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(source, "adapter_config.json"), "utf8"));
  edit.config?.(config);
  writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(config));
  if (edit.tensors === undefined) {
    copyFileSync(join(source, "adapter_model.safetensors"), join(dir, "adapter_model.safetensors"));
  } else {
    const tensors = [
      ...readSafetensors(join(source, "adapter_model.safetensors")).tensors.values(),
    ].map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape, data: t.data }));
    edit.tensors(tensors);
    writeSafetensors(join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  }
  return dir;
}

function loadError(dir: string): string {
  const model = loadReferenceModel("llama");
  try {
    loadAdapter(model, dir);
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`loadAdapter accepted ${dir}`);
}

const Q0 = "base_model.model.model.layers.0.self_attn.q_proj";

test("non-finite weight is rejected", () => {
  const dir = badAdapter("nan", {
    tensors: (tensors) => {
      const t = tensors.find((x) => x.name === `${Q0}.lora_B.weight`);
      assert.ok(t !== undefined);
      const values = new Float32Array(t.data.slice().buffer);
      values[3] = NaN;
      t.data = new Uint8Array(values.buffer);
    },
  });
  const message = loadError(dir);
  assert.match(message, /q_proj\.lora_B\.weight" contains a non-finite value \(NaN at element 3\)/);
  assert.match(message, /earlier checkpoint/);
});

test("missing config points at the run's checkpoint", () => {
  const run = join(scratch, "stopped-run");
  mkdirSync(join(run, "checkpoints", "step-000008"), { recursive: true });
  writeFileSync(join(run, "checkpoints", "latest"), "step-000008\n");
  const message = loadError(run);
  assert.match(message, /adapter_config\.json not found/);
  assert.match(message, /latest checkpoint .*checkpoints\/step-000008 is an adapter folder/);
});

test("wrong r is one listing error", () => {
  const message = loadError(badAdapter("wrong-r", { config: (c) => (c.r = 8) }));
  assert.match(message, /does not fit the model \(8 problems\)/);
  assert.match(message, /q_proj.lora_A.weight" has shape \[4, 64\], expected \[8, 64\]/);
  assert.match(message, /r = 8/);
});

test("long problem lists are cut short", () => {
  // Every key renamed: each expected tensor is missing and each stored one unexpected.
  const dir = badAdapter("renamed", {
    tensors: (t) => t.forEach((x) => (x.name = x.name.replace("layers.", "blocks."))),
  });
  const message = loadError(dir);
  const total = Number(/\((\d+) problems\)/.exec(message)?.[1]);
  assert.ok(total > 12, message);
  const items = message.split("\n").filter((line) => line.startsWith("  - "));
  assert.equal(items.length, 13);
  assert.equal(items[12], `  - ... and ${total - 12} more`);
});

test("missing key is one listing error", () => {
  const dir = badAdapter("missing", {
    tensors: (t) =>
      t.splice(
        t.findIndex((x) => x.name === `${Q0}.lora_B.weight`),
        1,
      ),
  });
  const message = loadError(dir);
  assert.match(message, /\(1 problem\)/);
  assert.match(message, new RegExp(`missing key "${Q0}.lora_B.weight"`));
});

test("extra key is one listing error", () => {
  const dir = badAdapter("extra", {
    tensors: (t) =>
      t.push({
        name: "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight",
        dtype: "F32",
        shape: [4, 64],
        data: new Uint8Array(4 * 64 * 4),
      }),
  });
  assert.match(
    loadError(dir),
    /unexpected key ".*k_proj.lora_A.weight": "model.layers.0.self_attn.k_proj" is not a target/,
  );
});

test("key without prefix is one listing error", () => {
  const dir = badAdapter("no-prefix", {
    tensors: (t) => {
      const entry = t.find((x) => x.name === `${Q0}.lora_A.weight`);
      if (entry) entry.name = "model.layers.0.self_attn.q_proj.lora_A.weight";
    },
  });
  const message = loadError(dir);
  assert.match(message, /\(2 problems\)/);
  assert.match(
    message,
    /"model.layers.0.self_attn.q_proj.lora_A.weight": it does not start with "base_model.model."/,
  );
  assert.match(message, new RegExp(`missing key "${Q0}.lora_A.weight"`));
});

test("nonexistent target is one listing error", () => {
  const message = loadError(
    badAdapter("no-target", {
      config: (c) => (c.target_modules = ["q_proj", "v_proj", "qkv_proj"]),
    }),
  );
  assert.match(message, /target module "qkv_proj" matches no module of the model/);
  assert.match(message, /Linear modules are:\n {2}model.layers.0.self_attn.q_proj/);
});

test("every problem lands in one error", () => {
  const dir = badAdapter("everything", {
    config: (c) => (c.target_modules = ["q_proj", "v_proj", "qkv_proj"]),
    tensors: (t) => {
      t.splice(
        t.findIndex((x) => x.name === `${Q0}.lora_B.weight`),
        1,
      );
      t.push({ name: "lora_extra.weight", dtype: "F32", shape: [1], data: new Uint8Array(4) });
    },
  });
  const message = loadError(dir);
  assert.match(message, /\(3 problems\)/);
  assert.match(message, /qkv_proj/);
  assert.match(message, /missing key/);
  assert.match(message, /"lora_extra.weight": it does not start with/);
});

test("default adapter name keys load", () => {
  const dir = badAdapter("default-names", {
    tensors: (t) => {
      for (const x of t) x.name = x.name.replace(/\.weight$/, ".default.weight");
    },
  });
  const model = loadReferenceModel("llama");
  const record = loadAdapter(model, dir);
  assert.equal(record.targets.length, 4);
});
