// Elementwise kernels over contiguous f32 arrays. Results do not depend on the thread count.
import { partStart, partEnd } from "./split";

/** out[i] = a[i] + b[i] for i in [0, n). a, b, out: f32 offsets; out may alias a or b. */
export function addF32(a: usize, b: usize, out: usize, n: i32, tid: i32, nt: i32): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  let i = start;
  for (; i + 4 <= end; i += 4) {
    const o = (<usize>i) << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < end; i++) {
    const o = (<usize>i) << 2;
    store<f32>(out + o, load<f32>(a + o) + load<f32>(b + o));
  }
}
