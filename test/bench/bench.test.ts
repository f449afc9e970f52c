// Smoke test of the training and decode benchmarks: tiny models run end to end through the child
// process harness in a few seconds, and the random checkpoint writer is checked on its own.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { decodeJob, type DecodeMeasurement } from "../../bench/decode.js";
import { benchFlags, type BenchFlags } from "../../bench/flags.js";
import { median } from "../../bench/process.js";
import { writeRandomCheckpoint } from "../../bench/random-checkpoint.js";
import { compare, type ComparedResult } from "../../bench/report.js";
import { trainJob, type TrainMeasurement } from "../../bench/train.js";
import { endStep } from "../../src/engine/index.js";
import { loadModelFromDir } from "../../src/models/index.js";

const QUICK: BenchFlags = {
  steps: 2,
  warmupSteps: 1,
  warmupSeconds: 0,
  dtypes: ["f32", "bf16"],
  profile: false,
  gradientCheckpointing: false,
  batch: null,
  nodeArgs: [],
};

test("random checkpoint loads with drawn values", () => {
  const dir = mkdtempSync(join(tmpdir(), "tslora-bench-test-"));
  try {
    writeRandomCheckpoint("tiny-llama", dir, 7);
    const model = loadModelFromDir(dir, "f32");
    assert.equal(model.modelType, "llama");
    assert.equal(model.dims.hiddenSize, 64);
    const params = new Map(model.namedParameters());
    const norm = params.get("model.norm.weight")?.toFloat32Array();
    assert.ok(norm !== undefined, "model.norm.weight is missing");
    assert.ok(
      norm.every((v) => v === 1),
      "norm scales must be 1",
    );
    const q = params.get("model.layers.0.self_attn.q_proj.weight")?.toFloat32Array();
    assert.ok(q !== undefined, "q_proj weight is missing");
    const std = Math.sqrt(q.reduce((s, v) => s + v * v, 0) / q.length);
    // initializer_range is 0.02; 4096 uniform draws put the sample std within a few percent.
    assert.ok(Math.abs(std - 0.02) < 0.002, `q_proj std ${std}, expected about 0.02`);
    const bound = 0.02 * Math.sqrt(3);
    assert.ok(
      q.every((v) => Math.abs(v) <= bound),
      "values exceed the uniform bound",
    );
    endStep();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("train job runs in child processes", async () => {
  const rows = (await trainJob("train-tiny", QUICK).run()) as ComparedResult[];
  // Two rows per dtype: speed and peak memory.
  assert.equal(rows.length, 4);
  for (const dtype of ["f32", "bf16"]) {
    const speed = rows.find((r) => r.unit === "tokens/s" && r.name.includes(` ${dtype} `));
    assert.ok(speed !== undefined, `no tokens/s row for ${dtype}: ${rows.map((r) => r.name)}`);
    const m = speed.details as TrainMeasurement;
    assert.equal(m.dtype, dtype);
    assert.equal(m.stepMs.length, 2);
    assert.equal(m.tokensPerStep, 32);
    assert.ok(Number.isFinite(speed.value), `tokens/s ${speed.value}`);
    assert.ok(speed.value > 0, `tokens/s ${speed.value}`);
    assert.ok(
      Math.abs(speed.value - (1000 * 32) / m.medianStepMs) < 1e-9,
      "tokens/s must follow from the median step",
    );
    // Weights of std 0.02 give near-zero logits, so the loss is close to ln(vocab size).
    assert.ok(Math.abs(m.firstLoss - Math.log(512)) < 0.1, `first loss ${m.firstLoss}`);
    assert.ok(m.trainableParameters > 0);
    assert.ok(m.peakRssBytes > 10e6, `peak RSS ${m.peakRssBytes}`);
  }
  const memory = rows.filter((r) => r.unit === "MB");
  assert.equal(memory.length, 2);
});

test("train job with gradient checkpointing", async () => {
  const flags = { ...QUICK, dtypes: ["f32" as const] };
  const plain = (await trainJob("train-tiny", flags).run())[0] as ComparedResult;
  const recomputed = (
    await trainJob("train-tiny", { ...flags, gradientCheckpointing: true }).run()
  )[0] as ComparedResult;
  assert.match(recomputed.name, /gradient-checkpointing$/);
  const a = plain.details as TrainMeasurement;
  const b = recomputed.details as TrainMeasurement;
  // Same weights, batch and updates: recomputing activations must not change the losses.
  assert.ok(Math.abs(a.firstLoss - b.firstLoss) < 1e-6, `${a.firstLoss} vs ${b.firstLoss}`);
  assert.ok(Math.abs(a.lastLoss - b.lastLoss) < 1e-5, `${a.lastLoss} vs ${b.lastLoss}`);
});

test("train job skips a missing fixture", async () => {
  const saved = process.env.TSLORA_FIXTURES;
  process.env.TSLORA_FIXTURES = join(tmpdir(), "tslora-bench-no-fixtures");
  try {
    const rows = await trainJob("train-tinystories", QUICK).run();
    assert.equal(rows.length, 1);
    assert.match(rows[0].name, /skipped$/);
    assert.match(rows[0].note ?? "", /models\/TinyStories-656K not found; set TSLORA_FIXTURES/);
  } finally {
    if (saved === undefined) delete process.env.TSLORA_FIXTURES;
    else process.env.TSLORA_FIXTURES = saved;
  }
});

test("decode job runs in child processes", async () => {
  const rows = (await decodeJob("decode-tiny", {
    ...QUICK,
    dtypes: ["bf16"],
  }).run()) as ComparedResult[];
  assert.equal(rows.length, 3);
  const m = rows[0].details as DecodeMeasurement;
  assert.equal(m.dtype, "bf16");
  assert.equal(m.newTokens, 8);
  assert.equal(m.decodeTokensPerSecond.length, 2);
  assert.ok(Number.isFinite(rows[0].value), `tokens/s ${rows[0].value}`);
  assert.ok(rows[0].value > 0, `tokens/s ${rows[0].value}`);
  assert.equal(rows[1].unit, "ms");
  assert.ok(rows[1].value > 0, `prefill ${rows[1].value} ms`);
  assert.equal(rows[2].unit, "MB");
});

test("compare adds ratios to a row", () => {
  const row = compare(
    { name: "x", value: 20, unit: "tokens/s" },
    { low: 16, high: 25, unit: "tokens/s" },
  );
  assert.deepEqual(row.ratio, [0.8, 1.25]);
  assert.match(row.note ?? "", /PyTorch\+PEFT 16.0–25.0 tokens\/s, ratio 0.80–1.25×/);
});

test("median of odd and even counts", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => median([]), /no values/);
});

test("bench flags parse and reject", () => {
  const flags = benchFlags(["train-gpt2", "--steps=7", "--dtype=bf16", "--profile"]);
  assert.equal(flags.steps, 7);
  assert.equal(flags.warmupSteps, 2);
  assert.equal(flags.warmupSeconds, 3);
  assert.equal(benchFlags(["--warmup-seconds=0.5"]).warmupSeconds, 0.5);
  assert.throws(
    () => benchFlags(["--warmup-seconds=-1"]),
    /--warmup-seconds must be a number >= 0/,
  );
  assert.deepEqual(flags.dtypes, ["bf16"]);
  assert.equal(flags.profile, true);
  assert.deepEqual(benchFlags([]).dtypes, null);
  assert.equal(benchFlags([]).batch, null);
  assert.equal(benchFlags(["--batch=2"]).batch, 2);
  assert.throws(() => benchFlags(["--batch=0"]), /--batch must be a whole number >= 1/);
  assert.throws(() => benchFlags(["--steps=0"]), /--steps must be a whole number >= 1/);
  assert.throws(() => benchFlags(["--dtype=f16"]), /--dtype takes f32, bf16/);
});
