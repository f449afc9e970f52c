// The counter-based Philox4x32-10 generator (the same function as engine/random.ts), for the
// kernels that draw dropout masks. index.ts does not re-export this file.

@inline
function mulHi(a: u32, b: u32): u32 {
  return <u32>((<u64>a * <u64>b) >> 32);
}

/** Writes Philox4x32-10 of counter (lo, hi, 0, 0) and key (k0, k1) to out[0..3]. */
@inline
export function philoxBlock(lo: u32, hi: u32, k0: u32, k1: u32, out: usize): void {
  let c0 = lo;
  let c1 = hi;
  let c2: u32 = 0;
  let c3: u32 = 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(0xd2511f53, c0);
    const lo0 = <u32>0xd2511f53 * c0;
    const hi1 = mulHi(0xcd9e8d57, c2);
    const lo1 = <u32>0xcd9e8d57 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += 0x9e3779b9;
    k1 += 0xbb67ae85;
  }
  store<u32>(out, c0);
  store<u32>(out, c1, 4);
  store<u32>(out, c2, 8);
  store<u32>(out, c3, 12);
}

/** Returns the high 32 bits of the 64-bit products a[i] * b[i] of unsigned lanes. */
@inline
function mulHi4(a: v128, b: v128): v128 {
  const low = i64x2.extmul_low_i32x4_u(a, b);
  const high = i64x2.extmul_high_i32x4_u(a, b);
  return i32x4.shuffle(low, high, 1, 3, 5, 7);
}

/**
 * Writes Philox4x32-10 of the four consecutive counters `counter` .. `counter` + 3 (as (lo, hi,
 * 0, 0) each) with key (k0, k1) to out[0..15]: the four words of block j at out[4j..4j+3], as
 * four philoxBlock calls would. The four blocks run in the lanes of one vector each round.
 */
export function philoxBlocks4(counter: u64, k0: u32, k1: u32, out: usize): void {
  // Lane j contains counter + j, split into its low and high words.
  const second = counter + 1;
  const third = counter + 2;
  const fourth = counter + 3;
  let c0 = i32x4.splat(<i32>counter);
  c0 = i32x4.replace_lane(c0, 1, <i32>second);
  c0 = i32x4.replace_lane(c0, 2, <i32>third);
  c0 = i32x4.replace_lane(c0, 3, <i32>fourth);
  let c1 = i32x4.splat(<i32>(counter >> 32));
  c1 = i32x4.replace_lane(c1, 1, <i32>(second >> 32));
  c1 = i32x4.replace_lane(c1, 2, <i32>(third >> 32));
  c1 = i32x4.replace_lane(c1, 3, <i32>(fourth >> 32));

  let c2 = i32x4.splat(0);
  let c3 = i32x4.splat(0);
  const m0 = i32x4.splat(<i32>0xd2511f53);
  const m1 = i32x4.splat(<i32>0xcd9e8d57);
  let key0 = k0;
  let key1 = k1;

  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi4(m0, c0);
    const lo0 = i32x4.mul(m0, c0);
    const hi1 = mulHi4(m1, c2);
    const lo1 = i32x4.mul(m1, c2);
    c0 = v128.xor(v128.xor(hi1, c1), i32x4.splat(<i32>key0));
    c1 = lo1;
    c2 = v128.xor(v128.xor(hi0, c3), i32x4.splat(<i32>key1));
    c3 = lo0;
    key0 += 0x9e3779b9;
    key1 += 0xbb67ae85;
  }

  // Lanes hold blocks; transpose so that each block's four words are contiguous.
  const lo01 = i32x4.shuffle(c0, c1, 0, 4, 1, 5);
  const hi01 = i32x4.shuffle(c0, c1, 2, 6, 3, 7);
  const lo23 = i32x4.shuffle(c2, c3, 0, 4, 1, 5);
  const hi23 = i32x4.shuffle(c2, c3, 2, 6, 3, 7);
  v128.store(out, i64x2.shuffle(lo01, lo23, 0, 2));
  v128.store(out, i64x2.shuffle(lo01, lo23, 1, 3), 16);
  v128.store(out, i64x2.shuffle(hi01, hi23, 0, 2), 32);
  v128.store(out, i64x2.shuffle(hi01, hi23, 1, 3), 48);
}
