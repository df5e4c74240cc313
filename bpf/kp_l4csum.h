/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_l4csum.h: tells a CHECKSUM_PARTIAL TCP/UDP check field from a complete checksum. */
#ifndef KP_L4CSUM_H
#define KP_L4CSUM_H

#include "kp_parse.h"
#include "kp_csum.h"

#define KP_CSUM_CHUNK 512    /* the most bytes bpf_csum_diff sums in one call */
#define KP_CSUM_MAX_SEG 9000 /* longest segment verified (jumbo frames); longer counts as partial */
#define KP_CSUM_MAX_CHUNKS (KP_CSUM_MAX_SEG / KP_CSUM_CHUNK)
#define KP_CSUM_WORD 4       /* bpf_csum_diff sizes are multiples of 4 */
#define KP_CSUM_FULL 0xffff  /* fold of a segment whose checksum verifies */
#define KP_L4_MAX_OFF KP_IPV6_MAX_L4_OFF /* the furthest a TCP/UDP header is parsed into the frame */

/* Adds the len bytes at seg to *sum; -1 if they are not all in the frame or len is too long.
 * Chunks of 512 bytes, then the tail by the bits of len % 512: 256, ..., 4 (constant sizes the
 * verifier can check), 2, 1. Each piece's address is seg + a value derived from len, never a
 * pointer carried across branches, so the verifier's paths merge instead of multiplying. Every
 * piece starts at an even offset, so the 16-bit words line up. */
/* kp_seg_sum's running sum and tail length, kept in a map value: in registers, the sum's range and
 * what each test taught the verifier about the tail's bits differ with every combination of pieces
 * summed, and it would walk each combination on its own (2^7 per chunk count, per call site); read
 * back from memory they are unknown numbers on every path, so the paths merge. */
struct kp_csum_walk {
	__u64 acc;
	__u32 rem;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_csum_walk);
} kp_csum_acc SEC(".maps");

static __always_inline int kp_seg_sum(void *seg, void *end, __u32 len, __u64 *sum)
{
	__u32 chunks, rem, i, s, zero = 0;
	struct kp_csum_walk *w;
	volatile __u64 *acc;
	volatile __u32 *remp;
	__s64 part;
	void *tail;
	void *p;

	if (len > KP_CSUM_MAX_SEG)
		return -1;
	w = bpf_map_lookup_elem(&kp_csum_acc, &zero);
	if (!w)
		return -1;
	acc = &w->acc;
	remp = &w->rem;
	*acc = 0;
	chunks = len / KP_CSUM_CHUNK;
	for (i = 0; i < KP_CSUM_MAX_CHUNKS; i++) {
		if (i >= chunks)
			break;
		p = seg + i * KP_CSUM_CHUNK;
		if (p + KP_CSUM_CHUNK > end)
			return -1;
		part = bpf_csum_diff(NULL, 0, p, KP_CSUM_CHUNK, 0);
		if (part < 0)
			return -1;
		*acc += (__u32)part;
	}
	rem = len % KP_CSUM_CHUNK;
	tail = seg + (len - rem);
	*remp = rem;
#pragma unroll
	for (s = KP_CSUM_CHUNK / 2; s >= KP_CSUM_WORD; s /= 2) {
		rem = *remp & (KP_CSUM_CHUNK - 1);
		if (!(rem & s))
			continue;
		p = tail + (rem & ~(2 * s - 1)); /* after the larger pieces */
		if (p + s > end)
			return -1;
		part = bpf_csum_diff(NULL, 0, p, s, 0);
		if (part < 0)
			return -1;
		*acc += (__u32)part;
	}
	rem = *remp & (KP_CSUM_CHUNK - 1);
	if (rem & 2) {
		p = tail + (rem & ~3u);
		if (p + 2 > end)
			return -1;
		*acc += *(__u16 *)p;
	}
	rem = *remp & (KP_CSUM_CHUNK - 1);
	if (rem & 1) {
		__u16 last = 0;

		p = tail + (rem & ~1u);
		if (p + 1 > end)
			return -1;
		*(__u8 *)&last = *(__u8 *)p; /* the odd byte is the high half of a zero-padded word */
		*acc += last;
	}
	*sum = *acc;
	return 0;
}

/* The folded sum of the len bytes at off in the frame, or -1 (kp_seg_sum). A global function: the
 * verifier checks its walk once rather than at every call site, in every state a packet path reaches
 * it with. It sees the frame only through ctx. */
__noinline int kp_seg_csum(struct xdp_md *ctx, __u64 off, __u64 len)
{
	void *data, *end;
	__u64 sum;

	/* 64-bit arguments: the verifier knows nothing of a global function's argument registers, and
	 * a 32-bit one's upper half, which the compiler takes to be zero, would be unbounded. */
	if (!ctx || off > KP_L4_MAX_OFF || len > KP_CSUM_MAX_SEG)
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (kp_seg_sum(data + off, end, len, &sum))
		return -1;
	return kp_csum_fold64(sum);
}

/* What the TCP/UDP check field of a packet holds. */
enum kp_l4_csum_state {
	KP_L4_CSUM_COMPLETE = 0, /* a complete checksum (or UDP's 0, "none") */
	KP_L4_CSUM_PARTIAL = 1,  /* CHECKSUM_PARTIAL; pkt->l4_sum is the segment's sum */
	KP_L4_CSUM_UNREAD = 2,   /* looks partial, segment not readable whole: partial, cannot be finished */
};

/* Classifies the check field (a local sender with TX checksum offload leaves fold(pseudo-header
 * sum) there). A field equal to fold(pseudo) is also a complete checksum for 1 in 65536 packets,
 * so the whole segment is then verified; its sum is kept in pkt->l4_sum. */
static __noinline int kp_l4_csum_verify(struct kp_pkt *pkt, __u64 pseudo);

/* Unfolded pseudo-header sum of the packet as it is now (IPv4 or IPv6). */
static __always_inline __u64 kp_l4_pseudo(const struct kp_pkt *pkt, const int v6)
{
	if (v6)
		return kp_pseudo_sum_v6(pkt->ip6->saddr.in6_u.u6_addr8, pkt->ip6->daddr.in6_u.u6_addr8, pkt->proto,
					pkt->l4_len);
	return kp_pseudo_sum_v4(pkt->ip->saddr, pkt->ip->daddr, pkt->proto, pkt->l4_len);
}

static __always_inline int kp_l4_csum_classify(struct kp_pkt *pkt, const int v6)
{
	__u64 pseudo = kp_l4_pseudo(pkt, v6);

	if (*pkt->l4_csum != kp_csum_fold64(pseudo))
		return KP_L4_CSUM_COMPLETE;
	return kp_l4_csum_verify(pkt, pseudo);
}

/* The field equals fold(pseudo): partial, or (1 in 65536) complete. A subprogram: only frames from
 * a local sender with checksum offload get here, and the segment walk's locals stay off the hot stack. */
static __noinline int kp_l4_csum_verify(struct kp_pkt *pkt, __u64 pseudo)
{
	int sum = kp_seg_csum(pkt->ctx, (void *)pkt->ports - (void *)pkt->eth, pkt->l4_len);

	if (sum < 0)
		return KP_L4_CSUM_UNREAD;
	if (kp_csum_fold64(sum + pseudo) == KP_CSUM_FULL)
		return KP_L4_CSUM_COMPLETE;
	pkt->l4_sum = sum;
	return KP_L4_CSUM_PARTIAL;
}

/* An IPv6 UDP datagram that came with a checksum of 0 ("none", which IPv6 forbids, RFC 8200 8.1):
 * the checksum is computed over the datagram as it leaves. -1 if it is not readable whole (it then
 * stays 0). A subprogram: such datagrams come only from NAT46 or broken senders. */
static __noinline int kp_udp6_csum_fill(struct kp_pkt *pkt)
{
	int sum;

	if (!pkt->ports)
		return -1;
	sum = kp_seg_csum(pkt->ctx, (void *)pkt->ports - (void *)pkt->eth, pkt->l4_len);
	if (sum < 0)
		return -1;
	*pkt->l4_csum = kp_udp_csum_fixup((__sum16)~kp_csum_fold64(sum + kp_l4_pseudo(pkt, 1)));
	return 0;
}

/* A redirected frame leaves its skb, and with it CHECKSUM_PARTIAL, behind: nothing downstream
 * would finish the checksum, so finish it here from the segment's sum. */
static __always_inline void kp_l4_csum_finish(struct kp_pkt *pkt)
{
	__sum16 check;

	if (pkt->l4_csum_state != KP_L4_CSUM_PARTIAL)
		return;
	check = (__sum16)~kp_csum_fold64(pkt->l4_sum);
	if (pkt->proto == IPPROTO_UDP)
		check = kp_udp_csum_fixup(check);
	*pkt->l4_csum = check;
	pkt->l4_csum_state = KP_L4_CSUM_COMPLETE;
}

#endif /* KP_L4CSUM_H */
