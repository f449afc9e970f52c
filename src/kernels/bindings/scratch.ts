// Per-thread scratch memory for the GEMM kernels, lent for one call. Each thread gets a slice of
// `stride` bytes in one block.
//
// The block is taken from the heap when a call starts and returned when it ends. A block kept
// between calls would have to grow when a call with a larger inner dimension comes (the LM head's
// input gradient packs 49,152-long rows). Grown in the middle of a training step, it lands above
// that step's buffers and stays there, splitting the free memory that the next step reuses.
import { getHeap } from "../../engine/memory.js";

/** Runs `fn` with a block of `threads` slices of at least `bytesPerThread` bytes each. */
export function withKernelScratch(
  bytesPerThread: number,
  threads: number,
  fn: (offset: number, stride: number) => void,
): void {
  const stride = Math.ceil(bytesPerThread / 64) * 64;
  const heap = getHeap();
  const offset = heap.alloc(stride * threads);
  try {
    fn(offset, stride);
  } finally {
    heap.release(offset);
  }
}
