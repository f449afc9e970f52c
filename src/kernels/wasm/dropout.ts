// Inverted dropout driven by the counter-based Philox4x32-10 generator (see engine/random.ts).
// Element i uses word i % 4 of the block at counter + i / 4, so the mask depends only on the
// generator state and the element index, never on how the work is split across threads.
import { philoxBlock } from "./philox";
import { partStart, partEnd } from "./split";

// The four output words of the current block, one static slot of 16 bytes per thread (tid < 256).
const BLOCK_SLOTS = memory.data(16 * 256);

/**
 * out[i] = x[i] * (scale when (word_i >>> 8) >= threshold, else 0) for i in [0, n). threshold is
 * ceil(p * 2^24), so an element is kept with probability 1 - p; scale is 1 / (1 - p). The
 * backward pass calls it again on the gradient with the same stream.
 */
export function dropoutF32(
  x: usize,
  out: usize,
  n: i32,
  threshold: u32,
  scale: f64,
  key0: u32,
  key1: u32,
  counterLo: u32,
  counterHi: u32,
  tid: i32,
  nt: i32,
): void {
  const start = partStart(n, 16, tid, nt);
  const end = partEnd(n, 16, tid, nt);
  const s = <f32>scale;
  const words = BLOCK_SLOTS + ((<usize>tid) << 4);
  const base = (<u64>counterHi << 32) | <u64>counterLo;
  for (let b = start >> 2; (b << 2) < end; b++) {
    const counter = base + <u64>b;
    philoxBlock(<u32>counter, <u32>(counter >> 32), key0, key1, words);
    const first = b << 2;
    const last = min(end, first + 4);
    for (let i = first; i < last; i++) {
      const o = (<usize>i) << 2;
      const word = load<u32>(words + ((<usize>(i - first)) << 2));
      // Multiplying by 0 (not storing 0) keeps NaN and infinity visible, as torch does.
      const factor: f32 = (word >>> 8) >= threshold ? s : 0;
      store<f32>(out + o, load<f32>(x + o) * factor);
    }
  }
}
