// Entry point of the kernel module. Every kernel works on byte offsets into the one shared memory
// that the TypeScript side allocates. Parallel kernels take (tid, nt) last: the calling thread's
// index and the number of threads, and each thread writes only its own part of the output.
export * from "./elementwise";
export * from "./gemm";
export * from "./softmax";
export * from "./attention";
export * from "./attention-backward";
export * from "./attention-tiled";
export * from "./rope";
export * from "./xent";

/** Returns the first byte after the module's static data, where the host allocator may start. */
export function heapBase(): usize {
  return __heap_base;
}

/** Reports whether this build uses relaxed SIMD fused multiply-add (1) or plain SIMD (0). */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
export * from "./reduce";
export * from "./layout";
export * from "./embedding";
export * from "./norm";
export * from "./activation";
export * from "./dropout";
export * from "./adamw";
export * from "./gemm-quant";
