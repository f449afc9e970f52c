// Inverted dropout driven by the counter-based Philox4x32-10 generator (see engine/random.ts).
// Element i uses word i % 4 of the block at counter + i / 4, so the mask depends only on the
// generator state and the element index, never on how the work is split across threads.
import { philoxBlock, philoxBlocks4 } from "./philox";
import { partStart, partEnd } from "./split";

// The output words of the current four blocks, one static slot of 64 bytes per thread
// (tid < 256).
const BLOCK_SLOTS = memory.data(64 * 256);

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
  const words = BLOCK_SLOTS + ((<usize>tid) << 6);
  const base = (<u64>counterHi << 32) | <u64>counterLo;
  const keep = f32x4.splat(s);
  const limit = i32x4.splat(<i32>threshold);
  // Sixteen elements (four blocks) at a time; thread ranges start at multiples of 16.
  let i = start;
  for (; i + 16 <= end; i += 16) {
    philoxBlocks4(base + <u64>(i >> 2), key0, key1, words);
    for (let j = 0; j < 16; j += 4) {
      const o = (<usize>(i + j)) << 2;
      const word = v128.load(words + ((<usize>j) << 2));
      const kept = i32x4.ge_u(i32x4.shr_u(word, 8), limit);
      // Multiplying by 0 (not storing 0) keeps NaN and infinity visible, as torch does.
      v128.store(out + o, f32x4.mul(v128.load(x + o), v128.and(kept, keep)));
    }
  }
  for (let b = i >> 2; (b << 2) < end; b++) {
    const counter = base + <u64>b;
    philoxBlock(<u32>counter, <u32>(counter >> 32), key0, key1, words);
    const first = b << 2;
    const last = min(end, first + 4);
    for (let k = first; k < last; k++) {
      const o = (<usize>k) << 2;
      const word = load<u32>(words + ((<usize>(k - first)) << 2));
      const factor: f32 = (word >>> 8) >= threshold ? s : 0;
      store<f32>(out + o, load<f32>(x + o) * factor);
    }
  }
}
