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

/* Adds the len bytes at seg to *sum; -1 if they are not all in the frame or len is too long.
 * Chunks of 512 bytes, then the tail by the bits of len % 512: 256, ..., 4 (constant sizes the
 * verifier can check), 2, 1. Each piece's address is seg + a value derived from len, never a
 * pointer carried across branches, so the verifier's paths merge instead of multiplying. Every
 * piece starts at an even offset, so the 16-bit words line up. */
static __always_inline int kp_seg_sum(void *seg, void *end, __u32 len, __u64 *sum)
{
	__u32 chunks, rem, i, s;
	__u64 acc = 0;
	__s64 part;
	void *tail;
	void *p;

	if (len > KP_CSUM_MAX_SEG)
		return -1;
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
		acc += (__u32)part;
	}
	rem = len % KP_CSUM_CHUNK;
	tail = seg + (len - rem);
#pragma unroll
	for (s = KP_CSUM_CHUNK / 2; s >= KP_CSUM_WORD; s /= 2) {
		if (!(rem & s))
			continue;
		p = tail + (rem & ~(2 * s - 1)); /* after the larger pieces */
		if (p + s > end)
			return -1;
		part = bpf_csum_diff(NULL, 0, p, s, 0);
		if (part < 0)
			return -1;
		acc += (__u32)part;
	}
	if (rem & 2) {
		p = tail + (rem & ~3u);
		if (p + 2 > end)
			return -1;
		acc += *(__u16 *)p;
	}
	if (rem & 1) {
		__u16 last = 0;

		p = tail + (rem & ~1u);
		if (p + 1 > end)
			return -1;
		*(__u8 *)&last = *(__u8 *)p; /* the odd byte is the high half of a zero-padded word */
		acc += last;
	}
	*sum = acc;
	return 0;
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
static __noinline int kp_l4_csum_verify(struct kp_pkt *pkt, __u32 pseudo);

static __always_inline int kp_l4_csum_classify(struct kp_pkt *pkt)
{
	const struct iphdr *ip = pkt->ip;
	__u32 l4_len = bpf_ntohs(ip->tot_len) - ip->ihl * 4; /* kp_parse checked tot_len >= ihl * 4 */
	__u32 pseudo = kp_pseudo_sum_v4(ip->saddr, ip->daddr, pkt->proto, l4_len);

	if (*pkt->l4_csum != kp_csum_fold(pseudo))
		return KP_L4_CSUM_COMPLETE;
	return kp_l4_csum_verify(pkt, pseudo);
}

/* The field equals fold(pseudo): partial, or (1 in 65536) complete. A subprogram: only frames from
 * a local sender with checksum offload get here, and the segment walk's locals stay off the hot stack. */
static __noinline int kp_l4_csum_verify(struct kp_pkt *pkt, __u32 pseudo)
{
	const struct iphdr *ip = pkt->ip;
	__u32 l4_len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;
	__u64 sum;

	if (kp_seg_sum(pkt->ports, pkt->data_end, l4_len, &sum))
		return KP_L4_CSUM_UNREAD;
	if (kp_csum_fold64(sum + pseudo) == KP_CSUM_FULL)
		return KP_L4_CSUM_COMPLETE;
	pkt->l4_sum = sum;
	return KP_L4_CSUM_PARTIAL;
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
