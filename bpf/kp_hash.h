/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_hash.h: MurmurHash3 x86_32 of a kp_flow_key, read as ten little-endian u32 words. */
#ifndef KP_HASH_H
#define KP_HASH_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "kp_shared.h"

#define KP_MURMUR_C1 0xcc9e2d51U
#define KP_MURMUR_C2 0x1b873593U
#define KP_MURMUR_M 5U
#define KP_MURMUR_N 0xe6546b64U
#define KP_FMIX_1 0x85ebca6bU
#define KP_FMIX_2 0xc2b2ae35U
#define KP_FLOW_KEY_WORDS (sizeof(struct kp_flow_key) / 4)

static __always_inline __u32 kp_rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

/* Little-endian load, independent of the CPU's byte order. */
static __always_inline __u32 kp_load_le32(const __u8 *p)
{
	return (__u32)p[0] | ((__u32)p[1] << 8) | ((__u32)p[2] << 16) | ((__u32)p[3] << 24);
}

static __always_inline __u32 kp_flow_hash(const struct kp_flow_key *key, __u32 seed)
{
	const __u8 *p = (const __u8 *)key;
	__u32 h = seed;
	int i;

#pragma unroll
	for (i = 0; i < KP_FLOW_KEY_WORDS; i++) {
		__u32 k = kp_load_le32(p + 4 * i);

		k *= KP_MURMUR_C1;
		k = kp_rotl32(k, 15);
		k *= KP_MURMUR_C2;
		h ^= k;
		h = kp_rotl32(h, 13);
		h = h * KP_MURMUR_M + KP_MURMUR_N;
	}
	/* 40 is a multiple of 4: no tail bytes. */
	h ^= sizeof(struct kp_flow_key);
	h ^= h >> 16;
	h *= KP_FMIX_1;
	h ^= h >> 13;
	h *= KP_FMIX_2;
	h ^= h >> 16;
	return h;
}

#endif /* KP_HASH_H */
