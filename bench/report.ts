// Report rows of the training and decode jobs: the PyTorch + PEFT figures our jobs are compared
// with, the rows that put the two side by side, and rows for skipped and failed runs.
import type { BenchResult } from "./job.js";

/** Origin of the reference figures, printed with every comparison. */
export const REFERENCE_SOURCE =
  "PyTorch 2.13 + transformers 5.17 + PEFT 0.21, f32, 2 threads, measured on a 2-core machine " +
  "of the class this benchmark runs on";

/** A reference figure: one value, or a range when repeated runs spread. */
export interface ReferenceFigure {
  low: number;
  high: number;
  unit: string;
}

function figure(low: number, high = low, unit: string): ReferenceFigure {
  return { low, high, unit };
}

/**
 * Reference figures per job name: training tokens/s and peak memory, decode tokens/s.
 * NOTE: the memory figures were given in GB without saying whether 10^9 or 2^30 bytes; they are
 * taken as 10^9 here, so a ratio near 1 is uncertain by about 7%.
 */
export const REFERENCE: Record<string, { speed: ReferenceFigure; memoryMB?: ReferenceFigure }> = {
  "train-smollm2": { speed: figure(147, 147, "tokens/s"), memoryMB: figure(3800, 3800, "MB") },
  "train-gpt2": { speed: figure(225, 225, "tokens/s"), memoryMB: figure(3000, 3000, "MB") },
  // An approximate figure: about 11,000 tokens/s.
  "train-tinystories": {
    speed: figure(11000, 11000, "tokens/s"),
    memoryMB: figure(390, 390, "MB"),
  },
  "decode-smollm2": { speed: figure(16, 18, "tokens/s") },
  "decode-gpt2": { speed: figure(23, 25, "tokens/s") },
};

/** A report row with the comparison in machine-readable fields as well as in the note. */
export interface ComparedResult extends BenchResult {
  reference?: ReferenceFigure & { source: string };
  /** ours / reference: [ours / high, ours / low]; equal when the reference is one value. */
  ratio?: [number, number];
  /** The child's full measurement (step times, phases, load average, ...). */
  details?: unknown;
}

function formatNumber(value: number): string {
  if (value >= 1000) return value.toFixed(0);
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatRange(low: number, high: number, digits: (v: number) => string): string {
  return low === high ? digits(low) : `${digits(low)}–${digits(high)}`;
}

/**
 * Returns `row` with the reference figure and the ratio ours/theirs added, and the comparison
 * appended to its note. For speed a ratio above 1 means faster; for memory, below 1 means less.
 */
export function compare(
  row: ComparedResult,
  reference: ReferenceFigure | undefined,
): ComparedResult {
  if (reference === undefined) return row;
  const ratio: [number, number] = [row.value / reference.high, row.value / reference.low];
  const theirs = `${formatRange(reference.low, reference.high, formatNumber)} ${reference.unit}`;
  const ours = `${formatRange(ratio[0], ratio[1], (v) => v.toFixed(2))}×`;
  const comparison = `PyTorch+PEFT ${theirs}, ratio ${ours}`;
  return {
    ...row,
    reference: { ...reference, source: REFERENCE_SOURCE },
    ratio,
    note: row.note === undefined ? comparison : `${row.note}; ${comparison}`,
  };
}

/** Bytes in MB (10^6 bytes), the unit of the memory rows. */
export function megabytes(bytes: number): number {
  return bytes / 1e6;
}

/** Builds the row of a run that could not start, e.g. because its fixture is missing. */
export function skippedRow(label: string, reason: string): ComparedResult {
  return { name: `${label} skipped`, value: NaN, unit: "", note: reason };
}

/** Builds the row of a failed run. The other runs go on. */
export function failedRow(label: string, err: unknown): ComparedResult {
  const message = err instanceof Error ? err.message : String(err);
  return { name: `${label} FAILED`, value: NaN, unit: "", note: message.split("\n")[0] };
}
