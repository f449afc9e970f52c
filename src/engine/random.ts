// A counter-based random generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as
// easy as 1, 2, 3", SC 2011). Value i of a draw depends only on (seed, counter, i), so kernels
// that split a draw across threads produce the same numbers for any thread count, and the
// generator's whole state is two integers.
import { Tensor, formatShape, shapeSize, type Shape, type TensorOptions } from "./tensor.js";

/** The serialisable state of an Rng: the seed and the next unused counter block. */
export interface RngState {
  seed: number;
  counter: number;
}

/** A reserved range of counter blocks, in the form the wasm kernels take. */
export interface RngStream {
  key0: number;
  key1: number;
  counterLo: number;
  counterHi: number;
}

// Philox4x32 round multipliers and Weyl key increments.
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const TWO_32 = 2 ** 32;

/** Returns the high 32 bits of the 64-bit product of two u32 values. */
function mulHi(a: number, b: number): number {
  // a = aHi * 2^16 + aLo; each partial product stays below 2^48, so doubles hold it exactly.
  const lo = (a & 0xffff) * b;
  const hi = (a >>> 16) * b;
  return Math.floor((hi + Math.floor(lo / 65536)) / 65536) >>> 0;
}

/** Writes the four 32-bit outputs of Philox4x32-10 for counter (c0..c3) and key (k0, k1). */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
  out: Uint32Array,
): void {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulHi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** Returns the 32-bit word for element i of a stream: word i % 4 of block counter + i / 4. */
export function streamWord(stream: RngStream, i: number, scratch = new Uint32Array(4)): number {
  const block = stream.counterLo + Math.floor(i / 4);
  const lo = block % TWO_32;
  const hi = stream.counterHi + Math.floor(block / TWO_32);
  philox4x32([lo, hi, 0, 0], [stream.key0, stream.key1], scratch);
  return scratch[i % 4];
}

function checkInteger(where: string, name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${where}: ${name} must be a whole number from 0 to 2^53 - 1, got ${value}`);
  }
}

export class Rng {
  private readonly seedValue: number;
  private next: number;

  /** Creates a generator from a whole-number seed in [0, 2^53). */
  constructor(seed: number) {
    checkInteger("Rng", "seed", seed);
    this.seedValue = seed;
    this.next = 0;
  }

  /** Recreates a generator that continues exactly where `state` was taken. */
  static fromState(state: RngState): Rng {
    checkInteger("Rng.fromState", "seed", state?.seed);
    checkInteger("Rng.fromState", "counter", state?.counter);
    const rng = new Rng(state.seed);
    rng.next = state.counter;
    return rng;
  }

  get seed(): number {
    return this.seedValue;
  }

  /** The next unused counter block; each block yields four 32-bit words. */
  get counter(): number {
    return this.next;
  }

  state(): RngState {
    return { seed: this.seedValue, counter: this.next };
  }

  /** Reserves enough counter blocks for `n` words and returns them as a stream. */
  reserve(n: number): RngStream {
    const start = this.next;
    this.next += Math.ceil(n / 4);
    if (!Number.isSafeInteger(this.next)) {
      throw new Error(`Rng: counter passed 2^53 after ${start} blocks; reseed the generator`);
    }
    return {
      key0: this.seedValue % TWO_32,
      key1: Math.floor(this.seedValue / TWO_32),
      counterLo: start % TWO_32,
      counterHi: Math.floor(start / TWO_32),
    };
  }

  /** Draws n words and passes each to `use` with its index, one counter block at a time. */
  private words(n: number, use: (word: number, i: number) => void): void {
    const stream = this.reserve(n);
    const block = new Uint32Array(4);
    const key: [number, number] = [stream.key0, stream.key1];
    const base = stream.counterHi * TWO_32 + stream.counterLo;
    for (let b = 0; b * 4 < n; b++) {
      const c = base + b;
      philox4x32([c % TWO_32, Math.floor(c / TWO_32), 0, 0], key, block);
      for (let k = 0; k < 4 && b * 4 + k < n; k++) use(block[k], b * 4 + k);
    }
  }

  /** Returns n values uniform in [0, 1) with 24 random bits each (exact in f32). */
  uniformValues(n: number): Float64Array {
    const out = new Float64Array(n);
    this.words(n, (w, i) => (out[i] = (w >>> 8) / 16777216));
    return out;
  }

  /** Returns a tensor of values uniform in [lo, hi), as torch.Tensor.uniform_(lo, hi). */
  uniform(shape: Shape, lo = 0, hi = 1, options: TensorOptions = {}): Tensor {
    if (!(lo <= hi) || !Number.isFinite(lo) || !Number.isFinite(hi)) {
      throw new Error(`Rng.uniform: expected finite lo <= hi, got lo ${lo} and hi ${hi}`);
    }
    const u = this.uniformValues(shapeSize(shape));
    const out = Tensor.empty(shape, "f32", options);
    const values = out.f32();
    for (let i = 0; i < u.length; i++) values[i] = lo + (hi - lo) * u[i];
    return out;
  }

  /** Returns a tensor of normal values with the given mean and standard deviation (Box-Muller). */
  normal(shape: Shape, mean = 0, std = 1, options: TensorOptions = {}): Tensor {
    if (!(std >= 0) || !Number.isFinite(std) || !Number.isFinite(mean)) {
      throw new Error(`Rng.normal: expected a finite mean and std >= 0, got ${mean} and ${std}`);
    }
    const n = shapeSize(shape);
    const out = Tensor.empty(shape, "f32", options);
    const values = out.f32();
    // Each pair of words gives two values: u1 in (0, 1] keeps the logarithm finite.
    let u1 = 0;
    this.words(2 * Math.ceil(n / 2), (w, i) => {
      if (i % 2 === 0) {
        u1 = ((w >>> 8) + 1) / 16777216;
        return;
      }
      const radius = Math.sqrt(-2 * Math.log(u1));
      const angle = (2 * Math.PI * (w >>> 8)) / 16777216;
      values[i - 1] = mean + std * radius * Math.cos(angle);
      if (i < n) values[i] = mean + std * radius * Math.sin(angle);
    });
    return out;
  }

  /**
   * Returns a tensor filled as torch.nn.init.kaiming_uniform_(w, a) for a weight of `shape`
   * [out, in, ...]: U(-bound, bound) with bound = gain * sqrt(3 / fan_in), gain =
   * sqrt(2 / (1 + a^2)) and fan_in = in * (product of the remaining dimensions).
   */
  kaimingUniform(shape: Shape, a = Math.sqrt(5), options: TensorOptions = {}): Tensor {
    if (shape.length < 2) {
      throw new Error(
        `Rng.kaimingUniform: shape ${formatShape(shape)} needs at least 2 dimensions [out, in]`,
      );
    }
    const fanIn = shapeSize(shape.slice(1));
    if (fanIn === 0) {
      throw new Error(`Rng.kaimingUniform: shape ${formatShape(shape)} has fan_in 0`);
    }
    const gain = Math.sqrt(2 / (1 + a * a));
    const bound = gain * Math.sqrt(3 / fanIn);
    return this.uniform(shape, -bound, bound, options);
  }
}
