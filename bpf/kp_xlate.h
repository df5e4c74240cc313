/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_xlate.h: IPv4 <-> IPv6 header translation of a parsed TCP/UDP packet (RFC 7915 4.1 and 5.1),
 * the header half of NAT46 and NAT64. The caller picks the new addresses (RFC 6052 embedding, a
 * backend, a node address); these rebuild the IP header, move the frame's start by the 20 bytes
 * the two headers differ in, and keep the L4 checksum right in whichever state it came (complete,
 * CHECKSUM_PARTIAL, or UDP's 0). The L4 header stays where it is in memory: only what is in front
 * of it is rewritten. Ports are the caller's (kp_nat_port after the translation). */
#ifndef KP_XLATE_H
#define KP_XLATE_H

#include "kp_parse.h"
#include "kp_csum.h"
#include "kp_l4csum.h"

#define KP_XLATE_GROWTH 20 /* sizeof(struct ipv6hdr) - sizeof(struct iphdr) */
#define KP_IPV4_MIN_MTU 68 /* RFC 791: every IPv4 link carries this much */

/* Return values: translated; not translatable, the frame untouched (the caller passes it on);
 * the frame's start moved but its new headers are out of reach (cannot happen for a frame that
 * parsed, but the verifier needs a way out): the caller drops it. */
#define KP_XLATE_OK 0
#define KP_XLATE_UNTOUCHED (-1)
#define KP_XLATE_BROKEN (-2)
/* kp_xlate_4to6 only: translated, and the UDP checksum is 0, which IPv6 forbids; the caller computes
 * it (kp_udp6_csum_fill) once it has set the ports. Left to the caller so that a translation with no
 * use for a checksum (a quote) does not put the segment walk's frames on its call chain. */
#define KP_XLATE_OK_FILL 1

/* The L4 check field after its pseudo-header's addresses changed by delta (the sum of the old
 * words complemented and the new words), in the state the field is in. */
static __always_inline void kp_xlate_l4_csum(struct kp_pkt *pkt, int state, __u32 delta)
{
	__sum16 check = *pkt->l4_csum;

	if (state != KP_L4_CSUM_COMPLETE) {
		__sum16 partial = (__sum16)kp_csum_fold((__u16)check + delta);

		*pkt->l4_csum = partial;
		pkt->l4_sum += (__u16)~check + (__u16)partial;
		pkt->l4_csum_state = state;
		return;
	}
	check = (__sum16)~kp_csum_fold((__u16)~check + delta);
	if (pkt->proto == IPPROTO_UDP)
		check = kp_udp_csum_fixup(check);
	*pkt->l4_csum = check;
}

/* Sum of the 16-bit words of a 16-byte address, complemented (old) or not (new). */
static __always_inline __u32 kp_xlate_sum16(const __u8 *a, int complement)
{
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < KP_ADDR_WORDS16; i++) {
		__u16 w;

		__builtin_memcpy(&w, a + 2 * i, sizeof(w));
		sum += complement ? (__u16)~w : w;
	}
	return sum;
}

static __always_inline __u32 kp_xlate_sum4(__be32 a, int complement)
{
	return complement ? (__u16)~(a & 0xffff) + (__u16)~(a >> 16) : (a & 0xffff) + (a >> 16);
}

/* pkt's L4 pointers after the frame's start moved: the L4 header is at l4_off from the start. */
static __always_inline int kp_xlate_l4_ptrs(struct kp_pkt *pkt, void *data, void *end, __u32 l4_off)
{
	void *l4 = data + l4_off;

	/* each branch checks its own header's length, so the verifier pairs the check with the pointer */
	if (pkt->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return KP_XLATE_BROKEN;
		pkt->l4_csum = &th->check;
	} else {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return KP_XLATE_BROKEN;
		pkt->l4_csum = &uh->check;
	}
	pkt->ports = l4;
	pkt->eth = data;
	pkt->data_end = end;
	return KP_XLATE_OK;
}

/* IPv4 -> IPv6 (RFC 7915 4.1): traffic class = TOS, flow label 0, hop limit = TTL, payload length
 * = total length - 20. Options and fragments are not translated (untouched: the caller passes them
 * to the kernel). A UDP checksum of 0, allowed in IPv4 and not in IPv6, is left for the caller to
 * compute (KP_XLATE_OK_FILL). */
static __noinline int kp_xlate_4to6(struct kp_pkt *pkt, const __u8 *saddr, const __u8 *daddr)
{
	struct xdp_md *ctx = pkt->ctx;
	struct iphdr *ip = pkt->ip;
	int state = KP_L4_CSUM_COMPLETE, fill = 0;
	struct ipv6hdr *ip6;
	__u16 tot_len;
	__u8 tos, ttl;
	struct ethhdr *eth;
	void *data, *end;
	__u32 delta;

	if (!ip || (void *)(ip + 1) > pkt->data_end || !pkt->l4_csum || pkt->vlan || ip->ihl != KP_IPV4_MIN_IHL ||
	    (ip->frag_off & bpf_htons(KP_IP_MF | KP_IP_OFFSET)))
		return KP_XLATE_UNTOUCHED;
	if ((void *)pkt->eth + ETH_HLEN > pkt->data_end)
		return KP_XLATE_UNTOUCHED;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip))
		return KP_XLATE_UNTOUCHED;
	if (pkt->proto == IPPROTO_UDP && *pkt->l4_csum == 0)
		fill = 1;
	else
		state = kp_l4_csum_classify(pkt, 0);
	delta = kp_xlate_sum4(ip->saddr, 1) + kp_xlate_sum4(ip->daddr, 1) + kp_xlate_sum16(saddr, 0) +
		kp_xlate_sum16(daddr, 0);
	if (!fill)
		kp_xlate_l4_csum(pkt, state, delta);
	tos = ip->tos;
	ttl = ip->ttl;

	if (bpf_xdp_adjust_head(ctx, -KP_XLATE_GROWTH))
		return KP_XLATE_UNTOUCHED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = data + ETH_HLEN;
	if ((void *)(ip6 + 1) > end)
		return KP_XLATE_BROKEN;
	/* The old Ethernet header is now 20 bytes in, clear of the new one: no copy on the stack. */
	__builtin_memcpy(eth, data + KP_XLATE_GROWTH, 2 * ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->version = 6;
	ip6->priority = tos >> 4;
	ip6->flow_lbl[0] = (tos & 0xf) << 4;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(tot_len - sizeof(*ip));
	ip6->nexthdr = pkt->proto;
	ip6->hop_limit = ttl;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr8, saddr, KP_ADDR_LEN);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr8, daddr, KP_ADDR_LEN);
	pkt->ip6 = ip6;
	pkt->len += KP_XLATE_GROWTH;
	if (kp_xlate_l4_ptrs(pkt, data, end, ETH_HLEN + sizeof(*ip6)))
		return KP_XLATE_BROKEN;
	return fill ? KP_XLATE_OK_FILL : KP_XLATE_OK;
}

/* IPv6 -> IPv4 (RFC 7915 5.1): TOS = traffic class, TTL = hop limit, identification 0 and DF set (no
 * fragment header), the header checksum computed. Extension headers and fragments are not
 * translated (untouched). */
static __noinline int kp_xlate_6to4(struct kp_pkt *pkt, __be32 saddr, __be32 daddr)
{
	struct xdp_md *ctx = pkt->ctx;
	struct ipv6hdr *ip6 = pkt->ip6;
	int state = KP_L4_CSUM_COMPLETE, none = 0;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *end;
	__u16 plen;
	__u32 delta;
	__s64 sum;
	__u8 tos;

	if (!ip6 || (void *)(ip6 + 1) > pkt->data_end || !pkt->l4_csum || pkt->vlan || pkt->frag_first ||
	    ip6->nexthdr != pkt->proto || pkt->l4 != (void *)(ip6 + 1))
		return KP_XLATE_UNTOUCHED;
	if ((void *)pkt->eth + ETH_HLEN > pkt->data_end)
		return KP_XLATE_UNTOUCHED;
	plen = bpf_ntohs(ip6->payload_len);
	if (plen > 0xffff - sizeof(*ip))
		return KP_XLATE_UNTOUCHED;
	if (pkt->proto == IPPROTO_UDP && *pkt->l4_csum == 0)
		none = 1; /* illegal in IPv6; in IPv4 it means "no checksum", which is what it has */
	else
		state = kp_l4_csum_classify(pkt, 1);
	delta = kp_xlate_sum16(ip6->saddr.in6_u.u6_addr8, 1) + kp_xlate_sum16(ip6->daddr.in6_u.u6_addr8, 1) +
		kp_xlate_sum4(saddr, 0) + kp_xlate_sum4(daddr, 0);
	if (!none)
		kp_xlate_l4_csum(pkt, state, delta);
	tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);

	/* The new headers go into the last 34 bytes before the L4 header, all read above. */
	ip = (void *)(ip6 + 1) - sizeof(*ip);
	eth = (void *)ip - ETH_HLEN;
	ip->version = 4;
	ip->ihl = KP_IPV4_MIN_IHL;
	ip->tos = tos;
	ip->tot_len = bpf_htons(plen + sizeof(*ip));
	ip->id = 0;
	ip->frag_off = bpf_htons(KP_IP_DF);
	ip->ttl = ip6->hop_limit; /* ip starts 20 bytes into ip6: hop_limit (byte 7) is read first */
	ip->protocol = pkt->proto;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	sum = bpf_csum_diff(NULL, 0, (void *)ip, sizeof(*ip), 0);
	ip->check = (__sum16)~kp_csum_fold((__u32)sum);
	/* The new Ethernet header ends where the old IPv6 header's saddr does: clear of the old one. */
	__builtin_memcpy(eth, pkt->eth, 2 * ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	if (bpf_xdp_adjust_head(ctx, KP_XLATE_GROWTH))
		return KP_XLATE_BROKEN;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN + sizeof(*ip) > end)
		return KP_XLATE_BROKEN;
	pkt->ip = data + ETH_HLEN;
	pkt->len -= KP_XLATE_GROWTH;
	return kp_xlate_l4_ptrs(pkt, data, end, ETH_HLEN + sizeof(*ip));
}

#endif /* KP_XLATE_H */
