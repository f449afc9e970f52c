// Bindings to the normalisation kernels in wasm/norm.ts. x, g, dx, out are [rows, c] f32;
// w, b, dw, db are [c]; mean and rstd are [rows]. Pass 0 for an absent bias or mean.
import { getPool } from "../pool.js";
import { threadsFor } from "./elementwise.js";

export interface NormRows {
  rows: number;
  c: number;
}

export function rmsNormF32(
  x: number,
  w: number,
  out: number,
  rstd: number,
  { rows, c }: NormRows,
  eps: number,
): void {
  getPool().run("rmsNormF32", [x, w, out, rstd, rows, c, eps], threadsFor(rows * c));
}

export function rmsNormBackwardF32(
  x: number,
  w: number,
  g: number,
  rstd: number,
  dx: number,
  { rows, c }: NormRows,
): void {
  getPool().run("rmsNormBackwardF32", [x, w, g, rstd, dx, rows, c], threadsFor(rows * c));
}

export function layerNormF32(
  x: number,
  w: number,
  b: number,
  out: number,
  stats: { mean: number; rstd: number },
  { rows, c }: NormRows,
  eps: number,
): void {
  const args = [x, w, b, out, stats.mean, stats.rstd, rows, c, eps];
  getPool().run("layerNormF32", args, threadsFor(rows * c));
}

export function layerNormBackwardF32(
  x: number,
  w: number,
  g: number,
  stats: { mean: number; rstd: number },
  dx: number,
  { rows, c }: NormRows,
): void {
  const args = [x, w, g, stats.mean, stats.rstd, dx, rows, c];
  getPool().run("layerNormBackwardF32", args, threadsFor(rows * c));
}

/** dw = sum over rows of g * xhat, db = sum over rows of g (db = 0 to skip; mean = 0 for RMSNorm). */
export function normParamGradF32(
  x: number,
  g: number,
  stats: { mean: number; rstd: number },
  dw: number,
  db: number,
  { rows, c }: NormRows,
): void {
  const args = [x, g, stats.mean, stats.rstd, dw, db, rows, c];
  getPool().run("normParamGradF32", args, threadsFor(rows * c));
}
