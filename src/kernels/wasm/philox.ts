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
