// GEMM throughput: the shapes of a GPT-2-small training step (M = 1024 tokens, C = 768) on 1 and
// 2 threads with f32 and bf16 weights, and a GEMV for decoding. B is stored [N, K] as in
// nn.Linear, so the kernel reads it transposed.
import { Tensor, endStep } from "../src/engine/index.js";
import { gemm, matrixOperand, warmUpGemm, type GemmDType } from "../src/kernels/bindings/gemm.js";
import { getPool, setThreads } from "../src/kernels/pool.js";
import { bestTime, type BenchJob, type BenchResult, type Timing } from "./job.js";

// [M, K, N]: attention projections (N = C, 3C), MLP up (4C) and MLP down (K = 4C).
const GEMM_SHAPES: [number, number, number][] = [
  [1024, 768, 768],
  [1024, 768, 2304],
  [1024, 768, 3072],
  [1024, 3072, 768],
];
// A decode step's largest matrix in a 1B-parameter model: 32 MiB in bf16, larger than L2 caches.
const GEMV_SHAPE: [number, number, number] = [1, 2048, 8192];

function measure(m: number, k: number, n: number, dtype: GemmDType): Timing {
  const a = Tensor.from(new Float32Array(m * k).fill(0.5), [m, k]);
  const b = Tensor.from(new Float32Array(n * k).fill(0.25), [n, k], dtype);
  const c = Tensor.empty([m, n]);
  const call = {
    a: matrixOperand(a.offset, m, k),
    b: matrixOperand(b.offset, n, k, true),
    bDtype: dtype,
    c: matrixOperand(c.offset, m, n),
    m,
    n,
    k,
    batch: 1,
  };
  const timing = bestTime(() => gemm(call), { minRuns: 5, budgetMs: 1500 });
  endStep();
  return timing;
}

function runGemm(): BenchResult[] {
  const results: BenchResult[] = [];
  const maxThreads = getPool().threads;
  for (const threads of [1, 2].filter((t) => t <= Math.max(2, maxThreads))) {
    setThreads(threads);
    warmUpGemm();
    for (const dtype of ["f32", "bf16"] as const) {
      for (const [m, k, n] of GEMM_SHAPES) {
        const { wallMs, cpuMs } = measure(m, k, n, dtype);
        const flop = 2 * m * n * k;
        results.push({
          name: `gemm ${dtype} M=${m} K=${k} N=${n} threads=${threads}`,
          value: flop / (wallMs * 1e6),
          unit: "GFLOP/s",
          note: `${wallMs.toFixed(2)} ms; ${(flop / (cpuMs * 1e6)).toFixed(1)} per CPU-second`,
        });
      }
      const [m, k, n] = GEMV_SHAPE;
      const { wallMs } = measure(m, k, n, dtype);
      const bytes = n * k * (dtype === "f32" ? 4 : 2);
      results.push({
        name: `gemv ${dtype} M=${m} K=${k} N=${n} threads=${threads}`,
        value: bytes / (wallMs * 1e6),
        unit: "GB/s",
        note: `${((2 * m * n * k) / (wallMs * 1e6)).toFixed(1)} GFLOP/s, ${wallMs.toFixed(3)} ms`,
      });
    }
  }
  setThreads(maxThreads);
  return results;
}

export const job: BenchJob = { run: runGemm };
