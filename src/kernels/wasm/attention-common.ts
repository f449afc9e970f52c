// Geometry and masking shared by the attention kernels in attention.ts and attention-backward.ts.
// index.ts does not re-export this file.
//
// Each kernel call stores its sizes in the globals below first. Globals belong to one module
// instance, and every pool thread has its own instance, so threads do not share them.

/** Batch size, query heads, KV heads, query rows, key rows and head size of the current call. */
export let B: i32 = 0;
export let H: i32 = 0;
export let Hkv: i32 = 0;
export let T: i32 = 0;
export let S: i32 = 0;
export let D: i32 = 0;
/** Query heads per KV head. */
export let group: i32 = 1;
/** Bytes of one row of D f32 values. */
export let rowBytes: usize = 0;
export let scale: f32 = 1;
export let causal: bool = false;
/** Offset of B * S i32 or f32 key flags (nonzero = real key), or 0 for none. */
export let keyMask: usize = 0;
/** Offset of H f32 ALiBi slopes, or 0 for none. */
export let slopes: usize = 0;

/** Stores the sizes and options of a kernel call in the globals of this thread. */
export function setGeometry(
  batch: i32,
  heads: i32,
  kvHeads: i32,
  queries: i32,
  keys: i32,
  headSize: i32,
  scoreScale: f32,
  isCausal: i32,
  keyMaskOffset: usize,
  slopesOffset: usize,
): void {
  B = batch;
  H = heads;
  Hkv = kvHeads;
  T = queries;
  S = keys;
  D = headSize;
  group = heads / kvHeads;
  rowBytes = (<usize>headSize) << 2;
  scale = scoreScale;
  causal = isCausal != 0;
  keyMask = keyMaskOffset;
  slopes = slopesOffset;
}

/** Returns one past the last key that query row t attends to: S - T + t + 1 when causal, else S. */
@inline
export function visibleEnd(t: i32): i32 {
  return causal ? S - T + t + 1 : S;
}

/** Returns true when key s of batch b is a real token. */
@inline
export function keyVisible(b: i32, s: i32): bool {
  if (keyMask == 0) return true;
  // 0, 0.0 and -0.0 are the only bit patterns with all bits but the sign clear, in i32 and f32.
  return (load<u32>(keyMask + ((<usize>(b * S + s)) << 2)) & 0x7fffffff) != 0;
}

/** Returns a lane mask, all ones in lane i when key s + i of batch b is a real token. */
@inline
export function keyVisibleMask4(b: i32, s: i32): v128 {
  if (keyMask == 0) return i32x4.splat(-1);
  const flags = v128.load(keyMask + ((<usize>(b * S + s)) << 2));
  return i32x4.ne(v128.and(flags, i32x4.splat(0x7fffffff)), i32x4.splat(0));
}

/** Returns the ALiBi slope of query head h (0 without ALiBi). */
@inline
export function slopeOf(h: i32): f32 {
  return slopes == 0 ? 0 : load<f32>(slopes + ((<usize>h) << 2));
}

/** Returns the score dot * scale + slope * s, the scalar form of scores4. */
@inline
export function score1(dot: f32, slope: f32, s: i32): f32 {
  return dot * scale + slope * <f32>s;
}

/** Returns the scores of keys s to s + 3 from their dot products, as score1 computes each. */
@inline
export function scores4(dots: v128, slope: f32, s: i32): v128 {
  const keys = f32x4.convert_i32x4_s(i32x4.add(i32x4.splat(s), i32x4(0, 1, 2, 3)));
  return f32x4.add(f32x4.mul(dots, f32x4.splat(scale)), f32x4.mul(f32x4.splat(slope), keys));
}
