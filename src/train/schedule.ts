// Learning-rate schedules: a linear warmup, then a constant, linear or cosine decay. Pure
// functions of the optimizer step, so a resumed run gets the same rate at the same step.
import { formatValue } from "../engine/format-value.js";

export type ScheduleKind = "cosine" | "linear" | "constant";

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ["cosine", "linear", "constant"];

export interface ScheduleConfig {
  kind: ScheduleKind;
  /** Peak learning rate, reached at the end of the warmup. */
  lr: number;
  /** Optimizer steps of linear warmup. 0 starts at the peak. */
  warmupSteps: number;
  /** Total optimizer steps of the run, where the decay ends. */
  totalSteps: number;
  /** Rate at the end of the decay as a fraction of `lr` (cosine and linear). Default 0. */
  minLrRatio?: number;
}

/** Throws when a schedule field is out of range, naming the field and the value. */
export function validateSchedule(config: ScheduleConfig): void {
  const { kind, lr, warmupSteps, totalSteps, minLrRatio = 0 } = config;
  if (!SCHEDULE_KINDS.includes(kind)) {
    throw new Error(
      `schedule: kind must be one of ${SCHEDULE_KINDS.join(", ")}, got ${JSON.stringify(kind)}`,
    );
  }
  if (!(Number.isFinite(lr) && lr > 0)) {
    throw new Error(`schedule: lr must be a finite number > 0, got ${formatValue(lr)}`);
  }
  if (!(Number.isInteger(totalSteps) && totalSteps >= 1)) {
    throw new Error(
      `schedule: totalSteps must be a whole number >= 1, got ${formatValue(totalSteps)}`,
    );
  }
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0 && warmupSteps <= totalSteps)) {
    throw new Error(
      `schedule: warmupSteps must be a whole number in [0, totalSteps = ${totalSteps}], ` +
        `got ${formatValue(warmupSteps)}`,
    );
  }
  if (!(minLrRatio >= 0 && minLrRatio <= 1)) {
    throw new Error(`schedule: minLrRatio must be in [0, 1], got ${formatValue(minLrRatio)}`);
  }
}

/**
 * Returns the learning rate of the update made at optimizer step `step` (0-based). Warmup step
 * s uses lr * (s + 1) / warmupSteps, so the first update is never made at rate 0 and the last
 * warmup step reaches the peak. The decay then runs over the remaining steps; the last step of
 * the run gets a rate just above the minimum.
 */
export function learningRateAt(step: number, config: ScheduleConfig): number {
  const { kind, lr, warmupSteps, totalSteps, minLrRatio = 0 } = config;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (kind === "constant") return lr;

  const decaySteps = Math.max(1, totalSteps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / decaySteps);
  const minLr = lr * minLrRatio;
  const factor = kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return minLr + (lr - minLr) * factor;
}
