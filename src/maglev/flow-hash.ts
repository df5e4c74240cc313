// Mirror of kp_flow_hash (bpf/kp_hash.h): predicts which Maglev slot a flow lands in.
import { KpError } from '../errors.js';
import { murmur3x86_32 } from './murmur3.js';

/** sizeof(struct kp_flow_key) in bpf/kp_shared.h. */
export const KP_FLOW_KEY_LEN = 40;

/**
 * MurmurHash3 x86_32 of an encoded struct kp_flow_key (40 bytes = ten little-endian u32
 * words, pad bytes zero), seeded with kp_config.hash_seed.
 */
export function flowHash(key40: Uint8Array, seed: number): number {
  if (key40.length !== KP_FLOW_KEY_LEN) {
    throw new KpError('KP_ERR_ARG', `flow key must be ${KP_FLOW_KEY_LEN} bytes, got ${key40.length}`);
  }
  return murmur3x86_32(key40, seed);
}

/** The Maglev slot the data plane reads for a flow hash: hash % tableLen, unsigned. */
export function maglevSlot(hash: number, tableLen: number): number {
  return (hash >>> 0) % tableLen;
}
