/** Small seeded random number generators: every random choice in the project comes from a seed. */

/** mulberry32: a fast 32-bit generator; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A new integer seed from a generator (for seeding tf ops such as dropout). */
export function nextSeed(rand: () => number): number {
  return Math.floor(rand() * 2 ** 31);
}
