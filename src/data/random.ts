// Seeded random numbers for shuffles and splits, so a run with the same seed gets the same data
// order. The generator is a Weyl sequence (golden-ratio increment) passed through a 32-bit
// xor-shift-multiply hash. Its state is one 32-bit number.

export type Random = () => number;

/** Creates a generator of floats in [0, 1) from a seed and a stream number (e.g. the epoch). */
export function createRandom(seed: number, stream = 0): Random {
  if (!Number.isInteger(seed) || !Number.isInteger(stream)) {
    throw new Error(`createRandom: seed and stream must be integers, got ${seed} and ${stream}`);
  }
  let state = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(stream | 0, 0x85ebca77)) | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return ((z ^ (z >>> 15)) >>> 0) / 4294967296;
  };
}

/** Shuffles an array in place (Fisher-Yates) and returns it. */
export function shuffleInPlace<T>(items: T[], random: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const swap = items[i];
    items[i] = items[j];
    items[j] = swap;
  }
  return items;
}
