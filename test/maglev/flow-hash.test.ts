import t from 'tap';
import { murmur3x86_32 } from '../../src/maglev/murmur3.js';
import { flowHash, maglevSlot, KP_FLOW_KEY_LEN } from '../../src/maglev/flow-hash.js';
import { KpError } from '../../src/errors.js';

const bytes = (a: number[]) => new Uint8Array(a);
const ascii = (s: string) => new TextEncoder().encode(s);

t.test('MurmurHash3 x86_32 published test vectors', async (t) => {
  // The vectors commonly used to validate ports of SMHasher's MurmurHash3_x86_32.
  const vectors: [Uint8Array, number, number][] = [
    [bytes([]), 0, 0x00000000],
    [bytes([]), 1, 0x514e28b7],
    [bytes([]), 0xffffffff, 0x81f16f39],
    [bytes([0, 0, 0, 0]), 0, 0x2362f9de],
    [bytes([0xff, 0xff, 0xff, 0xff]), 0, 0x76293b50],
    [bytes([0x21, 0x43, 0x65, 0x87]), 0, 0xf55b516b],
    [bytes([0x21, 0x43, 0x65, 0x87]), 0x5082edee, 0x2362f9de],
    [bytes([0x21, 0x43, 0x65]), 0, 0x7e4a8634],
    [bytes([0x21, 0x43]), 0, 0xa0f7b07a],
    [bytes([0x21]), 0, 0x72661cf4],
    [bytes([0, 0, 0]), 0, 0x85f0b427],
    [bytes([0, 0]), 0, 0x30f4c306],
    [bytes([0]), 0, 0x514e28b7],
    [ascii('aaaa'), 0x9747b28c, 0x5a97808a],
    [ascii('aaa'), 0x9747b28c, 0x283e0130],
    [ascii('aa'), 0x9747b28c, 0x5d211726],
    [ascii('a'), 0x9747b28c, 0x7fa09ea6],
    [ascii('abcd'), 0x9747b28c, 0xf0478627],
    [ascii('abc'), 0x9747b28c, 0xc84a62dd],
    [ascii('ab'), 0x9747b28c, 0x74875592],
    [ascii('Hello, world!'), 0x9747b28c, 0x24884cba],
    [ascii('The quick brown fox jumps over the lazy dog'), 0x9747b28c, 0x2fa826cd],
    [ascii('The quick brown fox jumps over the lazy dog'), 0, 0x2e4ff723],
  ];
  for (const [data, seed, want] of vectors) {
    t.equal(murmur3x86_32(data, seed), want, `len ${data.length} seed 0x${seed.toString(16)}`);
  }
});

// struct kp_flow_key: saddr[16] daddr[16] sport(be16) dport(be16) proto pad[3]
function flowKey(saddr4: number[], daddr4: number[], sport: number, dport: number, proto: number): Uint8Array {
  const k = new Uint8Array(KP_FLOW_KEY_LEN);
  const dv = new DataView(k.buffer);
  k.set([0xff, 0xff, ...saddr4], 10);
  k.set([0xff, 0xff, ...daddr4], 26);
  dv.setUint16(32, sport, false);
  dv.setUint16(34, dport, false);
  k[36] = proto;
  return k;
}

t.test('flowHash of 40-byte kp_flow_key vectors (shared with bpf/kp_hash.h tests)', async (t) => {
  // Checked against a separate C build of the same algorithm; the C side must give the same.
  const tcp = flowKey([198, 18, 0, 10], [198, 18, 100, 1], 40000, 80, 6);
  const counting = Uint8Array.from({ length: 40 }, (_, i) => i);
  t.equal(flowHash(new Uint8Array(40), 0), 0xc2067ae9, 'all-zero key, seed 0');
  t.equal(flowHash(tcp, 0), 0x8fe0393a, '198.18.0.10:40000 -> 198.18.100.1:80 tcp, seed 0');
  t.equal(flowHash(tcp, 0x12345678), 0xf21f4301, 'same key, seed 0x12345678');
  t.equal(flowHash(counting, 0xdeadbeef), 0xe0b55972, 'bytes 0..39, seed 0xdeadbeef');
});

t.test('flowHash reads ten little-endian words (word-wise reference)', async (t) => {
  // Independent word-wise formulation: the 40-byte path never reaches the tail code.
  const ref = (key: Uint8Array, seed: number): number => {
    const dv = new DataView(key.buffer, key.byteOffset, key.byteLength);
    const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r));
    let h = seed | 0;
    for (let w = 0; w < 10; w++) {
      let k = dv.getUint32(w * 4, true);
      k = Math.imul(rotl(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
      h = (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
    }
    h ^= 40;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  let x = 0x9e3779b9;
  for (let n = 0; n < 200; n++) {
    const key = new Uint8Array(40);
    for (let i = 0; i < 40; i++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      key[i] = x >>> 24;
    }
    const seed = x;
    if (flowHash(key, seed) !== ref(key, seed)) {
      t.fail(`mismatch for key ${Buffer.from(key).toString('hex')} seed ${seed}`);
      return;
    }
  }
  t.pass('200 pseudo-random keys agree');
});

t.test('flowHash rejects keys that are not 40 bytes', async (t) => {
  t.throws(() => flowHash(new Uint8Array(39), 0), { code: 'KP_ERR_ARG', message: /40 bytes, got 39/ });
  t.type(
    (() => {
      try {
        flowHash(new Uint8Array(41), 0);
      } catch (e) {
        return e;
      }
    })(),
    KpError,
  );
});

t.test('maglevSlot is an unsigned modulo', async (t) => {
  t.equal(maglevSlot(0xffffffff, 1021), 0xffffffff % 1021);
  t.equal(maglevSlot(-1, 1021), 0xffffffff % 1021, 'a signed int32 is read as unsigned');
  t.equal(maglevSlot(0x8fe0393a, 13), 0x8fe0393a % 13);
  t.equal(maglevSlot(5, 7), 5);
});
