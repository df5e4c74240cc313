// MurmurHash3 x86_32 (Austin Appleby's public-domain algorithm), written from its definition.
// Shared by the Maglev permutation hashes and the flow hash mirror of bpf/kp_hash.h.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const BLOCK = 4;

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function scramble(k: number): number {
  return Math.imul(rotl32(Math.imul(k, C1), 15), C2);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86_32 of `data` (blocks read little-endian), as an unsigned 32-bit number. */
export function murmur3x86_32(data: Uint8Array, seed: number): number {
  const len = data.length;
  const nblocks = len >>> 2;
  let h = seed >>> 0;
  for (let i = 0; i < nblocks; i++) {
    const o = i * BLOCK;
    const k = data[o] | (data[o + 1] << 8) | (data[o + 2] << 16) | (data[o + 3] << 24);
    h ^= scramble(k);
    h = (Math.imul(rotl32(h, 13), 5) + 0xe6546b64) | 0;
  }
  const tail = nblocks * BLOCK;
  let k = 0;
  switch (len & 3) {
    case 3:
      k ^= data[tail + 2] << 16;
    // falls through
    case 2:
      k ^= data[tail + 1] << 8;
    // falls through
    case 1:
      k ^= data[tail];
      h ^= scramble(k);
  }
  h ^= len;
  return fmix32(h);
}
