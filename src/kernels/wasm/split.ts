// Work partitioning shared by the parallel kernels.

/** Returns the start of thread `tid`'s share of `n` items, rounded to multiples of `align`. */
@inline
export function partStart(n: i32, align: i32, tid: i32, nt: i32): i32 {
  const blocks = (n + align - 1) / align;
  const per = blocks / nt;
  const extra = blocks % nt;
  const start = (tid * per + min(tid, extra)) * align;
  return min(start, n);
}

/** Returns the end (exclusive) of thread `tid`'s share; see partStart. */
@inline
export function partEnd(n: i32, align: i32, tid: i32, nt: i32): i32 {
  return partStart(n, align, tid + 1, nt);
}
