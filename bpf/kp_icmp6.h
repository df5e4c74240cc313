/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_icmp6.h: ICMPv6 errors (RFC 4443) kpbpf sends, port unreachable for a VIP without endpoints and
 * packet too big for a translated packet, and ICMPv6 errors about NATed connections translated as
 * conntrack does: the quoted packet, the outer address that stands for the backend or the VIP, and
 * every checksum. The IPv6 counterpart of kp_icmp.h and kp_icmp_xlate.h. */
#ifndef KP_ICMP6_H
#define KP_ICMP6_H

#include <linux/icmpv6.h>
#include "kp_ct.h"
#include "kp_l4csum.h"

#define KP_ICMP6_HLEN 8
#define KP_IPV6_MIN_MTU 1280
/* RFC 4443 2.4(c): as much of the packet as fits in the minimum MTU. */
#define KP_ICMP6_MAX_QUOTE (KP_IPV6_MIN_MTU - KP_IPV6_HLEN - KP_ICMP6_HLEN)
#define KP_ICMP6_HOP_LIMIT 64
#define KP_ICMP6_PUSH (KP_IPV6_HLEN + KP_ICMP6_HLEN)
#define KP_ICMP6_QUOTED_L4 8  /* ports, then UDP length and checksum (TCP's at 16, if quoted) */
#define KP_TCP_CSUM_OFF 16
#define KP_UDP6_CSUM_OFF 6

/* The packet's TCP/UDP header follows its IPv6 header: an error quoting it can be translated. */
static __always_inline int kp_icmp6_quotable(const struct kp_pkt *pkt)
{
	return (void *)pkt->ports == (void *)(pkt->ip6 + 1);
}

/* Rewrites the frame in place into Ethernet (same MACs and tag) / IPv6 from the packet's destination
 * to its source / ICMPv6 type, code and `rest` (unused, or the MTU) quoting the packet from its IPv6
 * header on, up to the minimum MTU. The old headers are pushed back, not copied: the quote's header
 * still holds both addresses and the frame's Ethernet header lies right after the new one's room.
 * The MACs stay as they came, as kp_icmp_error's do. Returns 0, or -1 when the packet has extension
 * headers (its quote could not be translated) or the frame cannot be resized; pkt then points into
 * the new frame (pkt->l4 at the ICMPv6 header). */
static __always_inline int kp_icmp6_error(struct xdp_md *ctx, struct kp_pkt *pkt, __u8 type, __u8 code, __be32 rest)
{
	__u32 l2 = (void *)pkt->ip6 - (void *)pkt->eth;
	struct ipv6hdr *ip6, *in;
	struct icmp6hdr *icmp;
	void *data, *end;
	__u32 quote;
	int sum;

	if (l2 != ETH_HLEN && l2 != ETH_HLEN + sizeof(struct kp_vlan_hdr))
		return -1;
	if (!kp_icmp6_quotable(pkt))
		return -1;
	quote = pkt->len - l2;
	if (quote > KP_ICMP6_MAX_QUOTE)
		quote = KP_ICMP6_MAX_QUOTE;
	if (pkt->len > l2 + quote && bpf_xdp_adjust_tail(ctx, -(int)(pkt->len - l2 - quote)))
		return -1;
	if (bpf_xdp_adjust_head(ctx, -KP_ICMP6_PUSH))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	/* Constant offsets for the verifier: l2 is one of two values. The quote holds at least the
	 * IPv6 header and the 8 bytes of TCP/UDP parsed before. */
	if (l2 == ETH_HLEN) {
		if (data + ETH_HLEN + KP_ICMP6_PUSH + KP_IPV6_HLEN + KP_ICMP6_QUOTED_L4 > end)
			return -1;
		__builtin_memcpy(data, data + KP_ICMP6_PUSH, ETH_HLEN);
		ip6 = data + ETH_HLEN;
	} else {
		if (data + ETH_HLEN + sizeof(struct kp_vlan_hdr) + KP_ICMP6_PUSH + KP_IPV6_HLEN + KP_ICMP6_QUOTED_L4 > end)
			return -1;
		__builtin_memcpy(data, data + KP_ICMP6_PUSH, ETH_HLEN + sizeof(struct kp_vlan_hdr));
		ip6 = data + ETH_HLEN + sizeof(struct kp_vlan_hdr);
	}
	in = (void *)ip6 + KP_ICMP6_PUSH;
	*(__be32 *)ip6 = bpf_htonl(6 << 28); /* version 6, traffic class 0, no flow label */
	ip6->payload_len = bpf_htons(KP_ICMP6_HLEN + quote);
	ip6->nexthdr = KP_NEXTHDR_ICMP6;
	ip6->hop_limit = KP_ICMP6_HOP_LIMIT;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr8, in->daddr.in6_u.u6_addr8, KP_ADDR_LEN);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr8, in->saddr.in6_u.u6_addr8, KP_ADDR_LEN);
	icmp = (void *)(ip6 + 1);
	icmp->icmp6_type = type;
	icmp->icmp6_code = code;
	icmp->icmp6_cksum = 0;
	icmp->icmp6_dataun.un_data32[0] = rest;
	sum = kp_seg_csum(ctx, (void *)icmp - data, KP_ICMP6_HLEN + quote);
	if (sum < 0)
		return -1;
	icmp->icmp6_cksum = (__sum16)~kp_csum_fold64(
		sum + kp_pseudo_sum_v6(ip6->saddr.in6_u.u6_addr8, ip6->daddr.in6_u.u6_addr8, KP_NEXTHDR_ICMP6,
				       KP_ICMP6_HLEN + quote));

	pkt->data_end = end;
	pkt->eth = data;
	pkt->ip6 = ip6;
	pkt->l4 = icmp;
	pkt->len = end - data;
	pkt->proto = KP_NEXTHDR_ICMP6;
	pkt->l4_csum_state = 0; /* nothing left to finish */
	return 0;
}

/* An ICMPv6 error quoting a TCP or UDP packet whose IPv6 header has no extension headers (errors
 * about others pass untranslated). */
struct kp_icmp6_err {
	struct icmp6hdr *icmp;
	struct ipv6hdr *in_ip6;
	__be16 *in_ports;
	__sum16 *in_csum; /* the quoted L4 checksum, if quoted (TCP's may not be) and not UDP's 0 */
	__u8 in_proto;
};

/* Destination unreachable, packet too big, time exceeded or parameter problem; 0 if so. */
static __always_inline int kp_icmp6_err_parse(const struct kp_pkt *pkt, struct kp_icmp6_err *e)
{
	struct icmp6hdr *icmp = pkt->l4;
	struct ipv6hdr *in;
	__be16 *ports;

	if ((void *)(icmp + 1) > pkt->data_end)
		return -1;
	if (icmp->icmp6_type < ICMPV6_DEST_UNREACH || icmp->icmp6_type > ICMPV6_PARAMPROB)
		return -1;
	in = (void *)(icmp + 1);
	ports = (void *)(in + 1);
	if ((void *)ports + KP_ICMP6_QUOTED_L4 > pkt->data_end)
		return -1;
	if (in->version != 6 || (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP))
		return -1;
	e->icmp = icmp;
	e->in_ip6 = in;
	e->in_ports = ports;
	e->in_proto = in->nexthdr;
	e->in_csum = NULL;
	if (in->nexthdr == IPPROTO_UDP) {
		if (*(__sum16 *)((void *)ports + KP_UDP6_CSUM_OFF))
			e->in_csum = (void *)ports + KP_UDP6_CSUM_OFF;
	} else if ((void *)ports + KP_TCP_CSUM_OFF + sizeof(__sum16) <= pkt->data_end) {
		e->in_csum = (void *)ports + KP_TCP_CSUM_OFF;
	}
	return 0;
}

/* A port field rewritten; its change to the checksums over it (RFC 1624 terms). */
static __always_inline __u32 kp_port_swap(__be16 *field, __be16 v)
{
	__u32 delta = (__u16)~*field + (__u16)v;

	*field = v;
	return delta;
}

/* Applies the changes: outer, to the ICMPv6 pseudo-header's addresses; inner, to the quote's
 * addresses and ports, which its own L4 checksum covers too. */
static __always_inline void kp_icmp6_csum_apply(struct kp_icmp6_err *e, __u32 outer, __u32 inner)
{
	__u32 delta = outer + inner;

	if (e->in_csum) {
		__sum16 old = *e->in_csum;
		__sum16 csum = (__sum16)~kp_csum_fold((__u16)~old + inner);

		if (e->in_proto == IPPROTO_UDP)
			csum = kp_udp_csum_fixup(csum);
		*e->in_csum = csum;
		delta += (__u16)~old + (__u16)csum;
	}
	e->icmp->icmp6_cksum = (__sum16)~kp_csum_fold((__u16)~e->icmp->icmp6_cksum + delta);
}

#define KP_IN6(p) ((p)->in6_u.u6_addr8)

/* An error about a packet kpbpf DNATed (it quotes client:port' -> backend:port), on its way to the
 * client: the quote becomes client:port -> VIP:port, and an outer source that is the backend becomes
 * the VIP. s->rk and s->fk are used for the lookups. Returns the VIP id, or 0. */
static __always_inline __u32 kp_icmp6_to_client(struct kp_pkt *pkt, struct kp_icmp6_err *e, struct kp_scratch *s,
						const struct kp_config *cfg, __u64 now)
{
	struct ipv6hdr *in = e->in_ip6;
	struct kp_flow_key *rk = &s->rk;
	__u32 outer = 0, inner = 0;
	struct kp_ct *rv;

	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->saddr, KP_IN6(&in->daddr), KP_ADDR_LEN);
	__builtin_memcpy(rk->daddr, KP_IN6(&in->saddr), KP_ADDR_LEN);
	rk->sport = e->in_ports[1];
	rk->dport = e->in_ports[0];
	rk->proto = e->in_proto;
	rk->dir = KP_DIR_REPLY;
	rv = bpf_map_lookup_elem(&kp_ct, rk);
	if (!rv || kp_addr_is_v4(rv->vip_addr) || !kp_ct_owner_in(rk, rv, cfg, now, &s->fk))
		return 0;
	if (kp_addr_eq(KP_IN6(&pkt->ip6->saddr), KP_IN6(&in->daddr)))
		outer += kp_addr_swap16(KP_IN6(&pkt->ip6->saddr), rv->vip_addr);
	if (rv->flags & KP_CT_F_MASQ) {
		/* To the client's own address, from the masquerade address it quotes. */
		if (kp_addr_eq(KP_IN6(&pkt->ip6->daddr), KP_IN6(&in->saddr)))
			outer += kp_addr_swap16(KP_IN6(&pkt->ip6->daddr), rv->peer.client_addr);
		inner += kp_addr_swap16(KP_IN6(&in->saddr), rv->peer.client_addr);
	}
	inner += kp_addr_swap16(KP_IN6(&in->daddr), rv->vip_addr);
	inner += kp_port_swap(&e->in_ports[1], rv->vip_port);
	inner += kp_port_swap(&e->in_ports[0], rv->client_port);
	kp_icmp6_csum_apply(e, outer, inner);
	return rv->vip_id ? rv->vip_id : 1;
}

/* An error about a reply kpbpf SNATed (it quotes VIP:port -> client:port), on its way to the VIP: the
 * quote becomes backend:port -> client:port' and the outer destination the backend. Returns the VIP
 * id, or 0. */
static __always_inline __u32 kp_icmp6_to_backend(struct kp_pkt *pkt, struct kp_icmp6_err *e, struct kp_scratch *s,
						 const struct kp_config *cfg, __u64 now)
{
	struct ipv6hdr *in = e->in_ip6;
	struct kp_flow_key *fk = &s->fk;
	__u32 outer = 0, inner = 0;
	struct kp_backend *be;
	struct kp_ct *ct;
	__be32 unused;

	__builtin_memset(fk, 0, sizeof(*fk));
	__builtin_memcpy(fk->saddr, KP_IN6(&in->daddr), KP_ADDR_LEN);
	__builtin_memcpy(fk->daddr, KP_IN6(&in->saddr), KP_ADDR_LEN);
	fk->sport = e->in_ports[1];
	fk->dport = e->in_ports[0];
	fk->proto = e->in_proto;
	ct = bpf_map_lookup_elem(&kp_ct, fk);
	if (!ct || kp_ct_expired(ct, cfg, now))
		return 0;
	be = kp_ct_backend(ct, 1, &unused);
	if (!be)
		return 0;
	if (kp_addr_eq(KP_IN6(&pkt->ip6->daddr), KP_IN6(&in->saddr)))
		outer += kp_addr_swap16(KP_IN6(&pkt->ip6->daddr), be->addr);
	if (ct->flags & KP_CT_F_MASQ) {
		/* The backend knows the client as the masquerade address. */
		if (kp_addr_eq(KP_IN6(&pkt->ip6->saddr), KP_IN6(&in->daddr)))
			outer += kp_addr_swap16(KP_IN6(&pkt->ip6->saddr), ct->vip_addr);
		inner += kp_addr_swap16(KP_IN6(&in->daddr), ct->vip_addr);
	}
	inner += kp_addr_swap16(KP_IN6(&in->saddr), be->addr);
	inner += kp_port_swap(&e->in_ports[0], be->port);
	inner += kp_port_swap(&e->in_ports[1], ct->client_port);
	kp_icmp6_csum_apply(e, outer, inner);
	return ct->vip_id ? ct->vip_id : 1;
}

#endif /* KP_ICMP6_H */
