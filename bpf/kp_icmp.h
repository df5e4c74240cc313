/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_icmp.h: turns a packet into the ICMP error a router sends about it: port unreachable for a
 * VIP without endpoints (kube-proxy's REJECT, so connect() fails at once), fragmentation needed
 * for a DF packet too big for the path to its backend or client. */
#ifndef KP_ICMP_H
#define KP_ICMP_H

#include <linux/icmp.h>
#include "kp_parse.h"
#include "kp_csum.h"

#define KP_ICMP_QUOTE_L4 8 /* RFC 792: the internet header plus 64 bits of data */
#define KP_ICMP_TTL 64
#define KP_IPTOS_PREC_INTERNETCONTROL 0xc0
#define KP_IPV4_HLEN 20
#define KP_ICMP_HLEN 8
#define KP_ICMP_BODY (KP_ICMP_HLEN + KP_IPV4_HLEN + KP_ICMP_QUOTE_L4) /* 36: a multiple of 4 */
#define KP_AF_INET_PROTO_ICMP 1

/* Rewrites the frame in place into Ethernet (same MACs and tag) / IPv4 from the packet's
 * destination to its source / ICMP type, code and `rest` (the unused word, or the next-hop MTU)
 * quoting the original IP header and 8 bytes of its TCP or UDP header. The MACs stay as they
 * came, so XDP_PASS hands the kernel a frame addressed to this node that it forwards; a redirect
 * sets them from the FIB. Returns 0, or -1 when the packet cannot be quoted (IP options) or the
 * frame cannot be resized; pkt then points into the new frame (pkt->l4 at the ICMP header). */
static __always_inline int kp_icmp_error(struct xdp_md *ctx, struct kp_pkt *pkt, __u8 type, __u8 code, __be32 rest)
{
	__u32 l2 = (void *)pkt->ip - (void *)pkt->eth;
	__u32 keep = l2 + KP_IPV4_HLEN + KP_ICMP_QUOTE_L4;
	__u8 l2hdr[ETH_HLEN + sizeof(struct kp_vlan_hdr)];
	__be32 client = pkt->ip->saddr;
	__be32 vip = pkt->ip->daddr;
	__u8 tos = pkt->ip->tos;
	struct icmphdr *icmp;
	struct iphdr *ip;
	void *data, *end;
	__s64 sum;

	if (pkt->ip->ihl != KP_IPV4_MIN_IHL || (l2 != ETH_HLEN && l2 != ETH_HLEN + sizeof(struct kp_vlan_hdr)))
		return -1;
	if ((void *)pkt->eth + sizeof(l2hdr) > pkt->data_end)
		return -1; /* cannot happen: TCP/UDP follow */
	__builtin_memcpy(l2hdr, pkt->eth, sizeof(l2hdr));
	if (pkt->len > keep && bpf_xdp_adjust_tail(ctx, -(int)(pkt->len - keep)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -(int)(KP_IPV4_HLEN + KP_ICMP_HLEN)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Constant offsets for the verifier: l2 is one of two values. */
	if (l2 == ETH_HLEN) {
		if (data + ETH_HLEN + KP_IPV4_HLEN + KP_ICMP_BODY > end)
			return -1;
		__builtin_memcpy(data, l2hdr, ETH_HLEN);
		ip = data + ETH_HLEN;
	} else {
		if (data + ETH_HLEN + sizeof(struct kp_vlan_hdr) + KP_IPV4_HLEN + KP_ICMP_BODY > end)
			return -1;
		__builtin_memcpy(data, l2hdr, sizeof(l2hdr));
		ip = data + ETH_HLEN + sizeof(struct kp_vlan_hdr);
	}
	ip->version = 4;
	ip->ihl = KP_IPV4_MIN_IHL;
	ip->tos = KP_IPTOS_PREC_INTERNETCONTROL | (tos & 0x1c);
	ip->tot_len = bpf_htons(KP_IPV4_HLEN + KP_ICMP_BODY);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = KP_ICMP_TTL;
	ip->protocol = KP_AF_INET_PROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	sum = bpf_csum_diff(NULL, 0, (void *)ip, KP_IPV4_HLEN, 0);
	ip->check = (__sum16)~kp_csum_fold((__u32)sum);
	icmp = (void *)(ip + 1);
	icmp->type = type;
	icmp->code = code;
	icmp->checksum = 0;
	icmp->un.gateway = rest;
	sum = bpf_csum_diff(NULL, 0, (void *)icmp, KP_ICMP_BODY, 0);
	icmp->checksum = (__sum16)~kp_csum_fold((__u32)sum);

	pkt->data_end = end;
	pkt->eth = data;
	pkt->ip = ip;
	pkt->l4 = icmp;
	pkt->len = end - data;
	pkt->proto = KP_AF_INET_PROTO_ICMP;
	pkt->l4_csum_state = 0; /* nothing left to finish */
	return 0;
}

#endif /* KP_ICMP_H */
