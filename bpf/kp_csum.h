/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_csum.h: incremental Internet checksum updates (RFC 1624, eqn. 3), complete and partial. */
#ifndef KP_CSUM_H
#define KP_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define KP_ADDR_WORDS16 8 /* 16-bit words in a 16-byte address */

/* Ones' complement fold of a 32-bit accumulator to 16 bits. */
static __always_inline __u16 kp_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Same for a 64-bit accumulator (sums of bpf_csum_diff results and 16-bit words). */
static __always_inline __u16 kp_csum_fold64(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return kp_csum_fold((__u32)sum);
}

/* Unfolded sum of the IPv4 pseudo-header; all values in network order, summed as stored. */
static __always_inline __u32 kp_pseudo_sum_v4(__be32 saddr, __be32 daddr, __u8 proto, __u16 l4_len)
{
	return (saddr & 0xffff) + (saddr >> 16) + (daddr & 0xffff) + (daddr >> 16) +
	       bpf_htons((__u16)proto) + bpf_htons(l4_len);
}

/* Unfolded sum of the IPv6 pseudo-header (RFC 8200 8.1): both addresses, the upper-layer length
 * (below 65536 here, so one word) and the next header. Summed as 32-bit words: ones' complement
 * sums fold the same either way. */
static __always_inline __u64 kp_pseudo_sum_v6(const __u8 *saddr, const __u8 *daddr, __u8 proto, __u16 l4_len)
{
	__u64 sum = bpf_htons((__u16)proto) + bpf_htons(l4_len);
	int i;

#pragma unroll
	for (i = 0; i < KP_ADDR_WORDS16 / 2; i++) {
		__u32 a, b;

		__builtin_memcpy(&a, saddr + 4 * i, sizeof(a));
		__builtin_memcpy(&b, daddr + 4 * i, sizeof(b));
		sum += a;
		sum += b;
	}
	return sum;
}

/* HC' = ~(~HC + ~m + m') for one 16-bit word; works on network order values as is. */
static __always_inline __sum16 kp_csum_replace2(__sum16 check, __be16 old, __be16 new)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~old;
	sum += (__u16)new;
	return (__sum16)~kp_csum_fold(sum);
}

static __always_inline __sum16 kp_csum_replace4(__sum16 check, __be32 old, __be32 new)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~(old & 0xffff);
	sum += (__u16)~(old >> 16);
	sum += new & 0xffff;
	sum += new >> 16;
	return (__sum16)~kp_csum_fold(sum);
}

/* A CHECKSUM_PARTIAL field holds fold(pseudo-header sum), not complemented (the sender's NIC or
 * skb_checksum_help completes it): HC' = HC + ~m + m', as inet_proto_csum_replace4 does. */
static __always_inline __sum16 kp_csum_partial_replace4(__sum16 check, __be32 old, __be32 new)
{
	__u32 sum = (__u16)check;

	sum += (__u16)~(old & 0xffff);
	sum += (__u16)~(old >> 16);
	sum += new & 0xffff;
	sum += new >> 16;
	return (__sum16)kp_csum_fold(sum);
}

/* UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff. */
static __always_inline __sum16 kp_udp_csum_fixup(__sum16 check)
{
	return check ? check : (__sum16)0xffff;
}

#endif /* KP_CSUM_H */
