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

#define KP_XLATE_FRAG_HLEN 8 /* an IPv6 fragment header */
#define KP_NEXTHDR_FRAG 44

/* The IPv6 header (and fragment header, frag) of a translated IPv4 packet, written in front of its
 * payload once the frame's start moved; the old Ethernet header is then `growth` bytes in, clear of
 * the new one (no copy on the stack). pkt's pointers are set; KP_XLATE_BROKEN if out of reach. */
static __always_inline int kp_xlate_write6(struct kp_pkt *pkt, const __u8 *saddr, const __u8 *daddr, __u16 tot_len,
					   __u8 tos, __u8 ttl, __u8 proto, __be16 id, __be16 frag_off, const int frag)
{
	struct xdp_md *ctx = pkt->ctx;
	const __u32 growth = KP_XLATE_GROWTH + (frag ? KP_XLATE_FRAG_HLEN : 0);
	const __u32 l4_off = ETH_HLEN + sizeof(struct ipv6hdr) + (frag ? KP_XLATE_FRAG_HLEN : 0);
	struct kp_frag6_hdr *fh;
	struct ipv6hdr *ip6;
	struct ethhdr *eth;
	void *data, *end;
	__u16 off;

	if (bpf_xdp_adjust_head(ctx, -(int)growth))
		return KP_XLATE_UNTOUCHED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = data + ETH_HLEN;
	fh = (void *)(ip6 + 1);
	if ((void *)(ip6 + 1) + (frag ? KP_XLATE_FRAG_HLEN : 0) > end || data + growth + ETH_HLEN > end)
		return KP_XLATE_BROKEN;
	__builtin_memcpy(eth, data + growth, 2 * ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->version = 6;
	ip6->priority = tos >> 4;
	ip6->flow_lbl[0] = (tos & 0xf) << 4;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(tot_len - sizeof(struct iphdr) + (frag ? KP_XLATE_FRAG_HLEN : 0));
	ip6->nexthdr = frag ? KP_NEXTHDR_FRAG : proto;
	ip6->hop_limit = ttl;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr8, saddr, KP_ADDR_LEN);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr8, daddr, KP_ADDR_LEN);
	if (frag) {
		if ((void *)(fh + 1) > end)
			return KP_XLATE_BROKEN;
		/* RFC 7915 4.1: the offset and MF carried over, the identification's low 16 bits the IPv4 one */
		off = bpf_ntohs(frag_off);
		fh->nexthdr = proto;
		fh->reserved = 0;
		fh->frag_off = bpf_htons(((off & KP_IP_OFFSET) << 3) | ((off & KP_IP_MF) ? KP_IPV6_FRAG_MF : 0));
		fh->id = bpf_htonl(bpf_ntohs(id));
	}
	pkt->ip6 = ip6;
	pkt->len += growth;
	if (!pkt->l4_csum) {
		/* a later fragment: no TCP/UDP header */
		pkt->eth = data;
		pkt->data_end = end;
		pkt->l4 = NULL;
		return KP_XLATE_OK;
	}
	return kp_xlate_l4_ptrs(pkt, data, end, l4_off);
}

/* IPv4 -> IPv6 (RFC 7915 4.1): traffic class = TOS, flow label 0, hop limit = TTL, payload length
 * = total length - 20. A fragment gets a fragment header; a later fragment (no TCP/UDP header, so
 * pkt->l4_csum is NULL) has only its IP header translated. IPv4 options are not translated
 * (untouched; the caller drops the packet). A UDP checksum of 0, allowed in IPv4 and not in IPv6, is
 * left for the caller to compute (KP_XLATE_OK_FILL), except in a first fragment, whose datagram is
 * not all here (untouched). */
static __noinline int kp_xlate_4to6(struct kp_pkt *pkt, const __u8 *saddr, const __u8 *daddr)
{
	struct iphdr *ip = pkt->ip;
	int state = KP_L4_CSUM_COMPLETE, fill = 0, frag;
	__u16 tot_len;
	__be16 id, frag_off;
	__u8 tos, ttl, proto;
	__u32 delta;

	if (!ip || (void *)(ip + 1) > pkt->data_end || pkt->vlan || ip->ihl != KP_IPV4_MIN_IHL)
		return KP_XLATE_UNTOUCHED;
	if ((void *)pkt->eth + ETH_HLEN > pkt->data_end)
		return KP_XLATE_UNTOUCHED;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip))
		return KP_XLATE_UNTOUCHED;
	frag = !!(ip->frag_off & bpf_htons(KP_IP_MF | KP_IP_OFFSET));
	proto = ip->protocol;
	if (pkt->l4_csum) {
		if (proto == IPPROTO_UDP && *pkt->l4_csum == 0) {
			if (frag)
				return KP_XLATE_UNTOUCHED;
			fill = 1;
		} else if (!frag) {
			state = kp_l4_csum_classify(pkt, 0); /* a fragment's checksum is always complete */
		}
		delta = kp_xlate_sum4(ip->saddr, 1) + kp_xlate_sum4(ip->daddr, 1) + kp_xlate_sum16(saddr, 0) +
			kp_xlate_sum16(daddr, 0);
		if (!fill)
			kp_xlate_l4_csum(pkt, state, delta);
	} else if (!frag || !(ip->frag_off & bpf_htons(KP_IP_OFFSET))) {
		return KP_XLATE_UNTOUCHED; /* only a later fragment comes without its L4 header */
	}
	tos = ip->tos;
	ttl = ip->ttl;
	id = ip->id;
	frag_off = ip->frag_off;
	if (frag)
		state = kp_xlate_write6(pkt, saddr, daddr, tot_len, tos, ttl, proto, id, frag_off, 1);
	else
		state = kp_xlate_write6(pkt, saddr, daddr, tot_len, tos, ttl, proto, id, frag_off, 0);
	if (state)
		return state;
	return fill ? KP_XLATE_OK_FILL : KP_XLATE_OK;
}

/* IPv6 -> IPv4 (RFC 7915 5.1): TOS = traffic class, TTL = hop limit, the header checksum computed.
 * Without a fragment header: identification 0 and DF set. With one (right after the IPv6 header):
 * the identification's low 16 bits, the offset and MF carried over, DF clear, and the fragment header
 * goes; a later fragment (pkt->l4_csum NULL) has only its IP header translated. Other extension
 * headers are not translated (untouched; the caller drops the packet). */
static __noinline int kp_xlate_6to4(struct kp_pkt *pkt, __be32 saddr, __be32 daddr)
{
	struct xdp_md *ctx = pkt->ctx;
	struct ipv6hdr *ip6 = pkt->ip6;
	int state = KP_L4_CSUM_COMPLETE, none = 0, frag;
	struct kp_frag6_hdr *fh;
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *end, *l4;
	__u16 plen, v4frag = KP_IP_DF, v4id = 0, off = 0;
	__u32 delta, shrink;
	__s64 sum;
	__u8 tos, proto;

	if (!ip6 || (void *)(ip6 + 1) > pkt->data_end || pkt->vlan)
		return KP_XLATE_UNTOUCHED;
	if ((void *)pkt->eth + ETH_HLEN > pkt->data_end)
		return KP_XLATE_UNTOUCHED;
	frag = ip6->nexthdr == KP_NEXTHDR_FRAG;
	fh = (void *)(ip6 + 1);
	l4 = (void *)(ip6 + 1);
	proto = ip6->nexthdr;
	if (frag) {
		if ((void *)(fh + 1) > pkt->data_end)
			return KP_XLATE_UNTOUCHED;
		proto = fh->nexthdr;
		off = bpf_ntohs(fh->frag_off);
		v4frag = (off >> 3) | ((off & KP_IPV6_FRAG_MF) ? KP_IP_MF : 0);
		v4id = bpf_ntohl(fh->id) & 0xffff;
		l4 = fh + 1;
	}
	if (proto != pkt->proto || (pkt->l4_csum && pkt->l4 != l4))
		return KP_XLATE_UNTOUCHED;
	if (!pkt->l4_csum && !(off & KP_IPV6_FRAG_OFFSET))
		return KP_XLATE_UNTOUCHED; /* only a later fragment comes without its L4 header */
	plen = bpf_ntohs(ip6->payload_len);
	if (frag) {
		if (plen < KP_XLATE_FRAG_HLEN)
			return KP_XLATE_UNTOUCHED;
		plen -= KP_XLATE_FRAG_HLEN;
	}
	if (plen > 0xffff - sizeof(*ip))
		return KP_XLATE_UNTOUCHED;
	if (pkt->l4_csum) {
		if (pkt->proto == IPPROTO_UDP && *pkt->l4_csum == 0)
			none = 1; /* illegal in IPv6; in IPv4 it means "no checksum", which is what it has */
		else if (!frag)
			state = kp_l4_csum_classify(pkt, 1);
		delta = kp_xlate_sum16(ip6->saddr.in6_u.u6_addr8, 1) + kp_xlate_sum16(ip6->daddr.in6_u.u6_addr8, 1) +
			kp_xlate_sum4(saddr, 0) + kp_xlate_sum4(daddr, 0);
		if (!none)
			kp_xlate_l4_csum(pkt, state, delta);
	}
	tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);

	/* The new headers go into the last 34 bytes before the payload, all read above. */
	ip = l4 - sizeof(*ip);
	eth = (void *)ip - ETH_HLEN;
	if ((void *)(ip + 1) > pkt->data_end || (void *)eth < (void *)pkt->eth)
		return KP_XLATE_UNTOUCHED;
	ip->version = 4;
	ip->ihl = KP_IPV4_MIN_IHL;
	ip->tos = tos;
	ip->tot_len = bpf_htons(plen + sizeof(*ip));
	ip->id = bpf_htons(v4id);
	ip->frag_off = bpf_htons(v4frag);
	ip->ttl = ip6->hop_limit; /* ip starts 20 bytes (28 with a fragment header) into ip6: hop_limit (byte 7) is read first */
	ip->protocol = proto;
	ip->check = 0;
	ip->saddr = saddr;
	ip->daddr = daddr;
	sum = bpf_csum_diff(NULL, 0, (void *)ip, sizeof(*ip), 0);
	ip->check = (__sum16)~kp_csum_fold((__u32)sum);
	/* The new Ethernet header ends before the old IPv6 header's daddr: clear of the old one. */
	__builtin_memcpy(eth, pkt->eth, 2 * ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	shrink = KP_XLATE_GROWTH + (frag ? KP_XLATE_FRAG_HLEN : 0);
	if (bpf_xdp_adjust_head(ctx, (int)shrink))
		return KP_XLATE_BROKEN;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + ETH_HLEN + sizeof(*ip) > end)
		return KP_XLATE_BROKEN;
	pkt->ip = data + ETH_HLEN;
	pkt->len -= shrink;
	if (!pkt->l4_csum) {
		pkt->eth = data;
		pkt->data_end = end;
		pkt->l4 = NULL;
		return KP_XLATE_OK;
	}
	return kp_xlate_l4_ptrs(pkt, data, end, ETH_HLEN + sizeof(*ip));
}

#endif /* KP_XLATE_H */
