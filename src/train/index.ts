// The training API: fineTune for a whole run, trainLoop for custom loops, and their parts.
export {
  fineTune,
  dropoutRng,
  OPTIMIZER_FILE,
  type FineTuneOptions,
  type FineTuneResult,
} from "./fine-tune.js";
export {
  trainLoop,
  NonFiniteLossError,
  type BatchSource,
  type StatefulRng,
  type StopReason,
  type TokenCounts,
  type TrainLoopOptions,
  type TrainResult,
  type ValidationResult,
} from "./trainer.js";
export {
  learningRateAt,
  validateSchedule,
  SCHEDULE_KINDS,
  type ScheduleConfig,
  type ScheduleKind,
} from "./schedule.js";
export { checkpoint, enableGradientCheckpointing } from "./checkpointing.js";
export {
  CheckpointStore,
  LATEST_FILE,
  TRAINER_STATE_FILE,
  type CheckpointParts,
  type TrainerState,
} from "./checkpoint-store.js";
export {
  MetricsLog,
  readMetricsLog,
  formatStepLine,
  formatValidationLine,
  type StepMetrics,
  type ValidationMetrics,
} from "./progress.js";
