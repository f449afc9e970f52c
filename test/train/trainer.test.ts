// The training loop on a small least-squares problem with a hand-written op and plain SGD, so
// the loop's own logic (accumulation, checkpoints, resume, stops) is tested apart from models.
import assert from "node:assert/strict";
import { test } from "node:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tensor } from "../../src/engine/index.js";
import { record } from "../../src/engine/tape.js";
import { CheckpointStore, type CheckpointParts } from "../../src/train/checkpoint-store.js";
import { MetricsLog, readMetricsLog } from "../../src/train/progress.js";
import {
  NonFiniteLossError,
  trainLoop,
  type BatchSource,
  type TrainLoopOptions,
} from "../../src/train/trainer.js";
import { makeRandom, randomArray } from "../helpers/random.js";

const n = 8;
const examples = 12;

interface Batch {
  rows: number[];
}

const xs = Array.from({ length: examples }, (_, i) => randomArray(n, 100 + i));
const trueW = randomArray(n, 7);
const ys = xs.map((x) => x.reduce((s, v, j) => s + v * trueW[j], 0));

/** Mean squared error of w·x against y over the batch rows, with its backward to w. */
function squaredError(w: Tensor, rows: number[], noise: number): Tensor {
  const wv = w.f32();
  const residuals = rows.map((r) => xs[r].reduce((s, v, j) => s + v * wv[j], 0) - ys[r] + noise);
  const value = residuals.reduce((s, e) => s + e * e, 0) / rows.length;
  const out = Tensor.from([value], [1]);
  return record(out, "squared-error", [w], (g) => {
    const grad = new Float32Array(n);
    rows.forEach((r, k) => {
      for (let j = 0; j < n; j++) grad[j] += (2 * residuals[k] * xs[r][j]) / rows.length;
    });
    return [
      Tensor.from(
        grad.map((v) => v * g.item()),
        [n],
      ),
    ];
  });
}

/** Shuffles the examples once per epoch from a seed, and counts its position. */
class ShuffledSource implements BatchSource<Batch> {
  epoch = 0;
  private index = 0;
  private order: number[] = [];

  constructor(
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    this.shuffle();
  }

  next(): Batch {
    if (this.index + this.batchSize > examples) {
      this.epoch++;
      this.index = 0;
      this.shuffle();
    }
    const rows = this.order.slice(this.index, this.index + this.batchSize);
    this.index += this.batchSize;
    return { rows };
  }

  position(): unknown {
    return { epoch: this.epoch, index: this.index };
  }

  restore(position: unknown): void {
    const p = position as { epoch: number; index: number };
    this.epoch = p.epoch;
    this.shuffle();
    this.index = p.index;
  }

  private shuffle(): void {
    const random = makeRandom(this.seed + this.epoch);
    this.order = Array.from({ length: examples }, (_, i) => i);
    for (let i = examples - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
    }
  }
}

/** A counter generator standing in for dropout noise: it makes resume depend on its state. */
class CounterRng {
  counter = 0;
  constructor(private readonly scale: number) {}
  draw(): number {
    return makeRandom(this.counter++)() * this.scale;
  }
  state(): unknown {
    return { counter: this.counter };
  }
  setState(state: unknown): void {
    this.counter = (state as { counter: number }).counter;
  }
}

interface Run {
  w: Tensor;
  rng: CounterRng;
  source: ShuffledSource;
  options: TrainLoopOptions<Batch>;
}

function makeRun(
  dir: string,
  overrides: Partial<TrainLoopOptions<Batch>> = {},
  batchSize = 3,
  lossOverride?: (step: number) => number | null,
  noiseScale = 1e-3,
): Run {
  const w = Tensor.zeros([n], "f32", { persistent: true, requiresGrad: true });
  const rng = new CounterRng(noiseScale);
  const source = new ShuffledSource(batchSize, 5);
  let calls = 0;
  const parts: CheckpointParts = {
    save: (d) => writeFileSync(join(d, "w.bin"), new Uint8Array(w.f32().slice().buffer)),
    load: (d) =>
      w.f32().set(new Float32Array(new Uint8Array(readFileSync(join(d, "w.bin"))).buffer)),
  };
  const options: TrainLoopOptions<Batch> = {
    params: [w],
    optimizerStep: (lr) => {
      const [p, g] = [w.f32(), w.grad!.f32()];
      for (let j = 0; j < n; j++) p[j] -= lr * g[j];
    },
    gradNorm: () => Math.hypot(...w.grad!.f32()),
    clipGradNorm: (_params, maxNorm) => {
      const norm = Math.hypot(...w.grad!.f32());
      const g = w.grad!.f32();
      if (norm > maxNorm) for (let j = 0; j < n; j++) g[j] *= maxNorm / norm;
      return norm;
    },
    batches: source,
    lossOf: (batch) => {
      calls++;
      const forced = lossOverride?.(calls);
      if (forced !== undefined && forced !== null) return Tensor.from([forced], [1]);
      return squaredError(w, batch.rows, rng.draw());
    },
    countTokens: (batch) => ({ lossTokens: batch.rows.length, tokens: batch.rows.length * n }),
    schedule: { kind: "cosine", lr: 0.05, warmupSteps: 3, totalSteps: 20 },
    checkpoints: new CheckpointStore(join(dir, "checkpoints")),
    checkpointParts: parts,
    rng,
    settings: { lr: 0.05 },
    ...overrides,
  };
  return { w, rng, source, options };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "tslora-trainer-"));
}

test("trainLoop lowers the loss", async () => {
  const run = makeRun(tempDir(), { checkpoints: undefined });
  const losses: number[] = [];
  const result = await trainLoop({ ...run.options, onStep: (m) => losses.push(m.loss) });
  assert.equal(result.reason, "completed");
  assert.equal(result.step, 20);
  assert.equal(losses.length, 20);
  const firstThree = (losses[0] + losses[1] + losses[2]) / 3;
  const lastThree = (losses[17] + losses[18] + losses[19]) / 3;
  assert.ok(lastThree < firstThree / 2, `loss ${firstThree} -> ${lastThree}`);
});

test("resume after abort is bit-exact", async () => {
  const straight = makeRun(tempDir());
  await trainLoop(straight.options);
  const expected = straight.w.f32().slice();

  const dir = tempDir();
  const first = makeRun(dir);
  const controller = new AbortController();
  const aborted = await trainLoop({
    ...first.options,
    signal: controller.signal,
    onStep: (m) => {
      if (m.step === 10) controller.abort();
    },
  });
  assert.equal(aborted.reason, "aborted");
  assert.equal(aborted.step, 10);
  assert.equal(readFileSync(join(dir, "checkpoints", "latest"), "utf8").trim(), "step-000010");

  const second = makeRun(dir, { resume: true });
  const resumed = await trainLoop(second.options);
  assert.equal(resumed.reason, "completed");
  assert.equal(resumed.step, 20);
  assert.equal(second.rng.counter, straight.rng.counter);
  assert.deepEqual(second.w.f32().slice(), expected);
});

test("resume rejects changed settings", async () => {
  const dir = tempDir();
  await trainLoop(makeRun(dir, { saveEvery: 5 }).options);
  const changed = makeRun(dir, { resume: true, settings: { lr: 0.1 } });
  await assert.rejects(trainLoop(changed.options), /settings changed.*lr: 0\.05 -> 0\.1/);
});

test("resume names an unset quantize none", async () => {
  const dir = tempDir();
  await trainLoop(makeRun(dir, { saveEvery: 5, settings: { lr: 0.05, quantize: "nf4" } }).options);
  const changed = makeRun(dir, { resume: true });
  await assert.rejects(trainLoop(changed.options), /quantize: "nf4" -> "none"/);
});

test("resume may raise the step count", async () => {
  const dir = tempDir();
  const settings = { lr: 0.05, steps: 20, warmup: 1 };
  await trainLoop(makeRun(dir, { saveEvery: 5, settings }).options);
  const finished: string[] = [];
  await trainLoop(makeRun(dir, { resume: true, settings, log: (l) => finished.push(l) }).options);
  assert.ok(
    finished.some((line) => /already reached its last step \(20\); raise --steps/.test(line)),
    finished.join("\n"),
  );

  const lines: string[] = [];
  const schedule = { kind: "cosine" as const, lr: 0.05, warmupSteps: 3, totalSteps: 30 };
  // The default warmup is a share of the steps, so it changes with them.
  const longer = makeRun(dir, {
    resume: true,
    schedule,
    settings: { lr: 0.05, steps: 30, warmup: 2 },
    log: (line) => lines.push(line),
  });
  const result = await trainLoop(longer.options);
  assert.equal(result.reason, "completed");
  assert.equal(result.step, 30);
  assert.ok(
    lines.some((line) => /continues to step 30 \(it was set to 20\)/.test(line)),
    lines.join("\n"),
  );
});

test("resume makes up an interrupted validation", async () => {
  const dir = tempDir();
  const metricsLog = new MetricsLog(join(dir, "metrics.jsonl"));
  const controller = new AbortController();
  // The validation at step 10 is interrupted (returns null), as Ctrl-C does, so the run stops
  // with a checkpoint at step 10 and no validation logged for it.
  let validations = 0;
  const first = makeRun(dir, {
    evalEvery: 5,
    saveEvery: 5,
    metricsLog,
    signal: controller.signal,
    validate: () => {
      validations++;
      if (validations < 2) return { loss: 1, tokens: 1 };
      controller.abort();
      return null;
    },
  });
  const stopped = await trainLoop(first.options);
  assert.equal(stopped.reason, "aborted");
  assert.equal(stopped.step, 10);
  assert.equal(metricsLog.has("validation", 10), false);
  // The periodic checkpoint of step 10 serves the abort too: one save, not two.
  const events = readMetricsLog(join(dir, "metrics.jsonl"))
    .filter((r) => r.type === "event" && r.step === 10)
    .map((r) => r.event);
  assert.deepEqual(events, ["checkpoint-periodic"]);

  const resumed = makeRun(dir, {
    resume: true,
    evalEvery: 5,
    metricsLog,
    validate: () => ({ loss: 0.5, tokens: 1 }),
  });
  const result = await trainLoop(resumed.options);
  assert.equal(result.validations[0]?.step, 10);
  const steps = readMetricsLog(join(dir, "metrics.jsonl"))
    .filter((r) => r.type === "validation")
    .map((r) => r.step);
  assert.deepEqual(steps, [5, 10, 15, 20]);
});

test("damaged checkpoint names an earlier one", async () => {
  const dir = tempDir();
  await trainLoop(makeRun(dir, { saveEvery: 5 }).options);
  const root = join(dir, "checkpoints");
  // Cut the latest checkpoint's weights short, as a full disk would.
  writeFileSync(join(root, "step-000020", "w.bin"), new Uint8Array(3));
  const run = makeRun(dir, { resume: true });
  await assert.rejects(
    trainLoop(run.options),
    /checkpoint: .*step-000020 is damaged: .*write its name \(step-000015(, step-\d+)*\) into .*latest/,
  );
  writeFileSync(join(root, "latest"), "step-000099\n");
  await assert.rejects(
    trainLoop(makeRun(dir, { resume: true }).options),
    /names "step-000099", which is not a complete checkpoint folder.*write its name \(step-000020/,
  );
});

test("resume without checkpoint names the folder", async () => {
  const dir = tempDir();
  const run = makeRun(dir, { resume: true });
  await assert.rejects(trainLoop(run.options), /found no checkpoint in .*checkpoints/);
});

test("gradient accumulation weights by tokens", async () => {
  // One step over 2 micro-batches of 2 rows must equal one step over 1 batch of 4 rows.
  const schedule = { kind: "constant" as const, lr: 0.1, warmupSteps: 0, totalSteps: 1 };
  const whole = makeRun(tempDir(), { schedule, checkpoints: undefined }, 4, undefined, 0);
  await trainLoop(whole.options);
  const split = makeRun(
    tempDir(),
    { schedule, checkpoints: undefined, gradAccum: 2 },
    2,
    undefined,
    0,
  );
  await trainLoop(split.options);
  const a = whole.w.f32();
  const b = split.w.f32();
  for (let j = 0; j < n; j++) {
    assert.ok(Math.abs(a[j] - b[j]) < 1e-6, `w[${j}]: ${a[j]} vs ${b[j]}`);
  }
});

test("NaN loss stops and keeps the checkpoint", async () => {
  const dir = tempDir();
  const run = makeRun(dir, { saveEvery: 4 }, 3, (call) => (call === 7 ? NaN : null));
  let saved: Float32Array | null = null;
  await assert.rejects(
    trainLoop({
      ...run.options,
      onStep: (m) => {
        if (m.step === 6) saved = run.w.f32().slice();
      },
    }),
    (err: unknown) => {
      assert.ok(err instanceof NonFiniteLossError);
      assert.equal(err.step, 7);
      assert.match(err.message, /loss is NaN at step 7/);
      assert.match(err.message, /step-000004/);
      return true;
    },
  );
  assert.deepEqual(run.w.f32().slice(), saved, "the failed step did not update the weights");
  assert.equal(readFileSync(join(dir, "checkpoints", "latest"), "utf8").trim(), "step-000004");
});

test("validation and metrics log", async () => {
  const dir = tempDir();
  const log = new MetricsLog(join(dir, "metrics.jsonl"));
  const lines: string[] = [];
  const run = makeRun(dir, {
    evalEvery: 5,
    metricsLog: log,
    log: (line) => lines.push(line),
    validate: () => ({ loss: 0.5, tokens: 10 }),
  });
  const result = await trainLoop(run.options);
  assert.deepEqual(
    result.validations.map((v) => v.step),
    [5, 10, 15, 20],
  );
  const records = readMetricsLog(join(dir, "metrics.jsonl"));
  assert.equal(records.filter((r) => r.type === "train").length, 20);
  assert.equal(records.filter((r) => r.type === "validation").length, 4);
  assert.match(lines[0], /^step {2}1\/20 \| loss \d+\.\d{4} \| lr 1\.67e-2 \| grad norm /);
  assert.match(lines[0], /tok\/s \| ETA \S+ \| mem /);
  assert.ok(existsSync(join(dir, "checkpoints", "step-000020", "w.bin")));
});

test("clipping bounds the update", async () => {
  const schedule = { kind: "constant" as const, lr: 0.1, warmupSteps: 0, totalSteps: 1 };
  const run = makeRun(tempDir(), { schedule, checkpoints: undefined, maxGradNorm: 0.01 });
  let reported = 0;
  await trainLoop({ ...run.options, onStep: (m) => (reported = m.gradNorm) });
  const step = Math.hypot(...run.w.f32());
  assert.ok(reported > 0.01, `the reported norm ${reported} is the norm before clipping`);
  assert.ok(Math.abs(step - 0.1 * 0.01) < 1e-7, `update norm ${step}, expected lr x maxGradNorm`);
});

test("trainLoop rejects params without gradients", async () => {
  const run = makeRun(tempDir(), { checkpoints: undefined });
  run.w.requiresGrad = false;
  await assert.rejects(
    trainLoop(run.options),
    /trainLoop: none of the 1 params requires a gradient, so nothing can learn/,
  );
  await assert.rejects(
    trainLoop({ ...run.options, params: [] }),
    /trainLoop: params is empty; pass the tensors the optimizer updates/,
  );
});
