// Reporting for the training loop: the progress line printed after each optimizer step, the
// validation line, and the JSONL metrics log that tools can read back.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../io/atomic.js";

/** Metrics of one optimizer step, as passed to onStep callbacks and written to the log. */
export interface StepMetrics {
  /** Optimizer steps completed, 1-based. */
  step: number;
  totalSteps: number;
  /** Mean training loss over the step's micro-batches, in nats per token. */
  loss: number;
  learningRate: number;
  /** L2 norm of the gradient over all trainable tensors, before clipping. */
  gradNorm: number;
  /** Unmasked (loss) tokens in this step, summed over micro-batches. */
  lossTokens: number;
  /** Input tokens in this step (real tokens, not padding), summed over micro-batches. */
  inputTokens: number;
  /**
   * Input tokens per second in this step, as counted by the batch source (fineTune counts real
   * tokens, not padding).
   */
  tokensPerSecond: number;
  stepSeconds: number;
  /** Estimated seconds to the end of the run from the mean step time so far. */
  etaSeconds: number;
  /** Bytes of tensors in the wasm memory after the step. */
  memoryBytes: number;
  /** Maximum bytes the wasm heap has held so far, the step arena's whole chunks included. */
  peakMemoryBytes: number;
  epoch: number;
}

/** Metrics of one validation pass. */
export interface ValidationMetrics {
  step: number;
  /** Mean loss over every unmasked validation token, in nats per token. */
  valLoss: number;
  valPerplexity: number;
  valTokens: number;
  seconds: number;
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

/** Formats seconds as "1h02m", "3m07s" or "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(rest).padStart(2, "0")}s`;
  return `${rest}s`;
}

/** Formats the one-line training progress report. */
export function formatStepLine(m: StepMetrics): string {
  const width = String(m.totalSteps).length;
  return [
    `step ${String(m.step).padStart(width)}/${m.totalSteps}`,
    `loss ${m.loss.toFixed(4)}`,
    `lr ${m.learningRate.toExponential(2)}`,
    `grad norm ${m.gradNorm.toFixed(3)}`,
    `${Math.round(m.tokensPerSecond)} tok/s`,
    `ETA ${formatDuration(m.etaSeconds)}`,
    `mem ${formatBytes(m.memoryBytes)} (peak ${formatBytes(m.peakMemoryBytes)})`,
  ].join(" | ");
}

export function formatValidationLine(m: ValidationMetrics): string {
  return (
    `step ${m.step} validation | loss ${m.valLoss.toFixed(4)} | ` +
    `perplexity ${m.valPerplexity.toFixed(3)} | ${m.valTokens} tokens | ${m.seconds.toFixed(1)}s`
  );
}

/**
 * The JSONL metrics log: one object per line, each with a "type" ("train", "validation" or
 * "event") and the step. Lines are appended as they happen, so a crash loses at most the line
 * being written.
 */
export class MetricsLog {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  write(type: "train" | "validation" | "event", record: object): void {
    const line = JSON.stringify({ type, ...record, time: new Date().toISOString() });
    appendFileSync(this.path, line + "\n");
  }

  /** Returns true when the log has a line of `type` at `step`. */
  has(type: "train" | "validation" | "event", step: number): boolean {
    return this.records().some(({ record }) => record.type === type && record.step === step);
  }

  /**
   * Drops the lines of steps after `step`. A resumed run calls it so that steps logged by the
   * interrupted run after its last checkpoint are not listed twice.
   */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const kept = this.records()
      .filter(({ record }) => typeof record.step !== "number" || record.step <= step)
      .map(({ line }) => line + "\n");
    writeFileAtomic(this.path, kept.join(""));
  }

  /** Returns the log's lines with their parsed records; a line cut short by a crash is left out. */
  private records(): { line: string; record: { type?: unknown; step?: unknown } }[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .flatMap((line) => {
        try {
          return [{ line, record: JSON.parse(line) as { type?: unknown; step?: unknown } }];
        } catch {
          return [];
        }
      });
  }
}

/** Reads a metrics log back as objects, for tests and tools. */
export function readMetricsLog(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
