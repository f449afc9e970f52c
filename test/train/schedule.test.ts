import assert from "node:assert/strict";
import { test } from "node:test";
import { learningRateAt, validateSchedule, type ScheduleConfig } from "../../src/train/schedule.js";

function rates(config: ScheduleConfig): number[] {
  return Array.from({ length: config.totalSteps }, (_, s) => learningRateAt(s, config));
}

test("constant schedule without warmup", () => {
  const r = rates({ kind: "constant", lr: 1e-3, warmupSteps: 0, totalSteps: 5 });
  assert.deepEqual(r, [1e-3, 1e-3, 1e-3, 1e-3, 1e-3]);
});

test("warmup rises linearly to the peak", () => {
  const r = rates({ kind: "constant", lr: 1, warmupSteps: 4, totalSteps: 6 });
  assert.deepEqual(r, [0.25, 0.5, 0.75, 1, 1, 1]);
});

test("linear decay after warmup", () => {
  const r = rates({ kind: "linear", lr: 1, warmupSteps: 2, totalSteps: 6 });
  assert.deepEqual(r, [0.5, 1, 1, 0.75, 0.5, 0.25]);
});

test("cosine decay matches the closed form", () => {
  const config: ScheduleConfig = { kind: "cosine", lr: 2e-4, warmupSteps: 3, totalSteps: 13 };
  const r = rates(config);
  for (let s = 3; s < 13; s++) {
    const expected = 2e-4 * 0.5 * (1 + Math.cos((Math.PI * (s - 3)) / 10));
    assert.ok(Math.abs(r[s] - expected) < 1e-18, `step ${s}: ${r[s]} != ${expected}`);
  }
  assert.equal(r[3], 2e-4);
  assert.ok(r[12] > 0, "the last step still has a positive rate");
});

test("cosine decays to the minimum ratio", () => {
  const config: ScheduleConfig = {
    kind: "cosine",
    lr: 1,
    warmupSteps: 0,
    totalSteps: 100,
    minLrRatio: 0.1,
  };
  const r = rates(config);
  assert.ok(r[99] > 0.1, `last rate ${r[99]}`);
  assert.ok(r[99] < 0.1003, `last rate ${r[99]}`);
  assert.equal(learningRateAt(100, config), 0.1);
  assert.equal(learningRateAt(500, config), 0.1);
  for (let s = 1; s < 100; s++) assert.ok(r[s] <= r[s - 1], `rate rises at step ${s}`);
});

test("schedule validation names the field", () => {
  const base: ScheduleConfig = { kind: "cosine", lr: 1e-3, warmupSteps: 0, totalSteps: 10 };
  assert.throws(() => validateSchedule({ ...base, lr: 0 }), /lr must be/);
  assert.throws(() => validateSchedule({ ...base, totalSteps: 0 }), /totalSteps/);
  assert.throws(() => validateSchedule({ ...base, warmupSteps: 11 }), /warmupSteps/);
  assert.throws(() => validateSchedule({ ...base, minLrRatio: 2 }), /minLrRatio/);
  assert.throws(
    () => validateSchedule({ ...base, kind: "step" as ScheduleConfig["kind"] }),
    /kind must be one of cosine, linear, constant/,
  );
  validateSchedule(base);
});
