// Reference elementwise kernels: plain loops, the oracle for the wasm versions.

export function addRef(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  out: { [i: number]: number; length: number },
): void {
  for (let i = 0; i < out.length; i++) out[i] = a[i] + b[i];
}
