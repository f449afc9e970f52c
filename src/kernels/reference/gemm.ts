// Reference GEMM: plain loops with f64 accumulation, the oracle for the wasm kernels.
//
// Operands are described by element strides, as in the wasm kernel: A(i, k) = a[i * aRow +
// k * aCol], B(k, j) = b[k * bRow + j * bCol], C(i, j) = c[i * cRow + j * cCol], and batch item t
// adds t * aBatch (bBatch, cBatch) elements. B is passed already decoded to numbers.

/** Element strides of one operand. `batch` 0 shares the matrix across batch items. */
export interface StridedLayout {
  row: number;
  col: number;
  batch: number;
}

/** Returns the layout of row-major [rows, cols] matrices (or [cols, rows] when transposed). */
export function matrixLayout(
  rows: number,
  cols: number,
  transposed: boolean,
  batched = true,
): StridedLayout {
  const batch = batched ? rows * cols : 0;
  return transposed ? { row: 1, col: cols, batch } : { row: cols, col: 1, batch };
}

export interface GemmRefProblem {
  a: ArrayLike<number>;
  aLayout: StridedLayout;
  b: ArrayLike<number>;
  bLayout: StridedLayout;
  c: { [i: number]: number; length: number };
  cLayout: StridedLayout;
  m: number;
  n: number;
  k: number;
  batch: number;
  /** Add to C instead of overwriting it. */
  accumulate: boolean;
}

/** C (+)= A·B for each batch item, summing each dot product in f64 before rounding once. */
export function gemmRef(p: GemmRefProblem): void {
  const { a, b, c, aLayout: al, bLayout: bl, cLayout: cl } = p;
  for (let t = 0; t < p.batch; t++) {
    for (let i = 0; i < p.m; i++) {
      for (let j = 0; j < p.n; j++) {
        let sum = 0;
        for (let kk = 0; kk < p.k; kk++) {
          sum +=
            a[t * al.batch + i * al.row + kk * al.col] * b[t * bl.batch + kk * bl.row + j * bl.col];
        }
        const index = t * cl.batch + i * cl.row + j * cl.col;
        c[index] = p.accumulate ? c[index] + sum : sum;
      }
    }
  }
}
