/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_icmp_cross.h: an ICMP error about a connection across families (NAT46, NAT64), translated to the
 * other family (RFC 7915 4.2 and 5.2). One on its way to the client is built anew from the VIP to the
 * client, quoting the IP header the client sent and the first 8 bytes of its TCP or UDP header (ports,
 * and the checksum made right again): what a stack matches an error to its socket by. One about a
 * reply, on its way to the VIP, goes to the backend from the masquerade address it knows the client
 * as, quoting the reply as the backend sent it. */
#ifndef KP_ICMP_CROSS_H
#define KP_ICMP_CROSS_H

#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include "kp_ct.h"
#include "kp_xlate.h"
#include "kp_icmp_xlate.h"
#include "kp_icmp6.h"

#define KP_IPV6_MIN_MTU 1280
#define KP_ICMP_CROSS_QUOTE 8 /* TCP/UDP bytes quoted */
#define KP_ICMP_CROSS_LEN4 (ETH_HLEN + 20 + 8 + 20 + KP_ICMP_CROSS_QUOTE) /* 70 */
#define KP_ICMP_CROSS_LEN6 (ETH_HLEN + 40 + 8 + 40 + KP_ICMP_CROSS_QUOTE) /* 110 */
#define KP_ICMP_CROSS_HOPS 64

/* RFC 7915 4.2: the ICMPv6 type, code and MTU word of an ICMPv4 error; -1 when it has none here. */
static __always_inline int kp_icmp_map_4to6(__u8 type, __u8 code, __be32 rest, struct kp_icmp_cross *x)
{
	__u32 mtu;

	__u8 ptr;

	x->rest = 0;
	x->code = code;
	if (type == ICMP_TIME_EXCEEDED) {
		x->type = ICMPV6_TIME_EXCEED;
		return 0;
	}
	if (type == ICMP_PARAMETERPROB) {
		/* RFC 7915 4.2 figure 3: the pointer moves to the IPv6 field; fields IPv6 lacks have none */
		if (code != 0 && code != 2)
			return -1;
		__builtin_memcpy(&ptr, &rest, 1);
		if (ptr <= 1)
			;
		else if (ptr <= 3)
			ptr = 4;
		else if (ptr == 8)
			ptr = 7;
		else if (ptr == 9)
			ptr = 6;
		else if (ptr >= 12 && ptr <= 15)
			ptr = 8;
		else if (ptr >= 16 && ptr <= 19)
			ptr = 24;
		else
			return -1;
		x->type = ICMPV6_PARAMPROB;
		x->code = ICMPV6_HDR_FIELD;
		x->rest = bpf_htonl(ptr);
		return 0;
	}
	if (type != ICMP_DEST_UNREACH)
		return -1;
	x->type = ICMPV6_DEST_UNREACH;
	switch (code) {
	case ICMP_NET_UNREACH:
	case ICMP_HOST_UNREACH:
	case ICMP_SR_FAILED:
	case ICMP_NET_UNKNOWN:
	case ICMP_HOST_UNKNOWN:
	case ICMP_HOST_ISOLATED:
	case ICMP_NET_UNR_TOS:
	case ICMP_HOST_UNR_TOS:
		x->code = ICMPV6_NOROUTE;
		return 0;
	case ICMP_PORT_UNREACH:
		x->code = ICMPV6_PORT_UNREACH;
		return 0;
	case ICMP_NET_ANO:
	case ICMP_HOST_ANO:
	case ICMP_PKT_FILTERED:
	case ICMP_PREC_CUTOFF:
		x->code = ICMPV6_ADM_PROHIBITED;
		return 0;
	case ICMP_FRAG_NEEDED:
		/* the IPv6 packet is 20 bytes longer than the IPv4 one the router saw */
		mtu = (bpf_ntohl(rest) & 0xffff) + KP_XLATE_GROWTH;
		x->type = ICMPV6_PKT_TOOBIG;
		x->code = 0;
		x->rest = bpf_htonl(mtu < KP_IPV6_MIN_MTU ? KP_IPV6_MIN_MTU : mtu);
		return 0;
	default:
		return -1;
	}
}

/* RFC 7915 5.2: the ICMPv4 type, code and MTU word of an ICMPv6 error; -1 when it has none here. */
static __always_inline int kp_icmp_map_6to4(__u8 type, __u8 code, __be32 rest, struct kp_icmp_cross *x)
{
	__u32 mtu, ptr;

	x->rest = 0;
	x->code = code;
	if (type == ICMPV6_TIME_EXCEED) {
		x->type = ICMP_TIME_EXCEEDED;
		return 0;
	}
	if (type == ICMPV6_PARAMPROB) {
		/* RFC 7915 5.2: an unknown next header is "protocol unreachable"; a field's pointer moves
		 * to the IPv4 field (figure 6); fields IPv4 lacks have none */
		if (code == ICMPV6_UNK_NEXTHDR) {
			x->type = ICMP_DEST_UNREACH;
			x->code = ICMP_PROT_UNREACH;
			return 0;
		}
		if (code != ICMPV6_HDR_FIELD)
			return -1;
		ptr = bpf_ntohl(rest);
		if (ptr <= 1)
			;
		else if (ptr == 4 || ptr == 5)
			ptr = 2;
		else if (ptr == 6)
			ptr = 9;
		else if (ptr == 7)
			ptr = 8;
		else if (ptr >= 8 && ptr <= 23)
			ptr = 12;
		else if (ptr >= 24 && ptr <= 39)
			ptr = 16;
		else
			return -1;
		x->type = ICMP_PARAMETERPROB;
		x->code = 0;
		x->rest = bpf_htonl(ptr << 24); /* the pointer is the word's first byte */
		return 0;
	}
	if (type == ICMPV6_PKT_TOOBIG) {
		mtu = bpf_ntohl(rest);
		mtu = mtu > KP_IPV4_MIN_MTU + KP_XLATE_GROWTH ? mtu - KP_XLATE_GROWTH : KP_IPV4_MIN_MTU;
		x->type = ICMP_DEST_UNREACH;
		x->code = ICMP_FRAG_NEEDED;
		x->rest = bpf_htonl(mtu > 0xffff ? 0xffff : mtu);
		return 0;
	}
	if (type != ICMPV6_DEST_UNREACH)
		return -1;
	x->type = ICMP_DEST_UNREACH;
	if (code == ICMPV6_PORT_UNREACH)
		x->code = ICMP_PORT_UNREACH;
	else if (code == ICMPV6_ADM_PROHIBITED)
		x->code = ICMP_HOST_ANO;
	else if (code == ICMPV6_NOROUTE || code == ICMPV6_NOT_NEIGHBOUR || code == ICMPV6_ADDR_UNREACH)
		x->code = ICMP_HOST_UNREACH;
	else
		return -1;
	return 0;
}

/* The key of the entry a quoted packet (src:sport -> dst:dport) answers to: its tuple reversed, in
 * direction dir (KP_DIR_REPLY: the quote is a forward packet as the backend got it; KP_DIR_ORIG: a
 * reply as the client got it). */
static __always_inline void kp_icmp_quote_key(struct kp_flow_key *k, const __u8 *qsrc, const __u8 *qdst, __be16 qsport,
					      __be16 qdport, __u8 proto, __u8 dir)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->saddr, qdst, KP_ADDR_LEN);
	__builtin_memcpy(k->daddr, qsrc, KP_ADDR_LEN);
	k->sport = qdport;
	k->dport = qsport;
	k->proto = proto;
	k->dir = dir;
}

/* The connection an error's quote (src:sport -> dst:dport, as the backend side saw it) belongs to, if
 * it is live and across families: the error goes to the client, from the VIP, quoting what the client
 * sent (into x). 0, or -1. */
static __always_inline int kp_icmp_cross_owner(struct kp_scratch *s, const __u8 *qsrc, const __u8 *qdst,
					       __be16 qsport, __be16 qdport, __u8 proto,
					       const struct kp_config *cfg, __u64 now)
{
	struct kp_flow_key *rk = &s->rk;
	struct kp_icmp_cross *x = &s->ic;
	struct kp_ct *rv;

	kp_icmp_quote_key(rk, qsrc, qdst, qsport, qdport, proto, KP_DIR_REPLY);
	rv = bpf_map_lookup_elem(&kp_ct, rk);
	if (!rv || !(rv->flags & KP_CT_F_XLATE) || !kp_ct_owner_in(rk, rv, cfg, now, &s->fk))
		return -1;
	if (kp_addr_is_v4(rv->vip_addr) == kp_addr_is_v4(qsrc))
		return -1; /* cannot happen: the VIP is of the other family */
	__builtin_memcpy(x->client, rv->peer.client_addr, KP_ADDR_LEN);
	__builtin_memcpy(x->vip, rv->vip_addr, KP_ADDR_LEN);
	x->qsport = rv->client_port;
	x->qdport = rv->vip_port;
	return 0;
}

/* An error about a reply of a connection across families (the quote is VIP:port -> client:port as the
 * client saw it): the error goes to the backend, from the masquerade address, quoting the reply as the
 * backend sent it (into x). 0, or -1 if it is about no such connection. */
static __always_inline int kp_icmp_cross_reply_owner(struct kp_scratch *s, const __u8 *qsrc, const __u8 *qdst,
						     __be16 qsport, __be16 qdport, __u8 proto,
						     const struct kp_config *cfg, __u64 now)
{
	struct kp_flow_key *fk = &s->fk;
	struct kp_icmp_cross *x = &s->ic;
	struct kp_backend *be;
	struct kp_ct *ct;
	__be32 unused;

	kp_icmp_quote_key(fk, qsrc, qdst, qsport, qdport, proto, KP_DIR_ORIG);
	ct = bpf_map_lookup_elem(&kp_ct, fk);
	if (!ct || !(ct->flags & KP_CT_F_XLATE) || kp_ct_expired(ct, cfg, now))
		return -1;
	be = kp_ct_backend(ct, kp_addr_is_v4(qsrc), &unused); /* of the other family than the VIP's */
	if (!be)
		return -1;
	__builtin_memcpy(x->client, be->addr, KP_ADDR_LEN);
	__builtin_memcpy(x->vip, ct->vip_addr, KP_ADDR_LEN);
	x->qsport = be->port;
	x->qdport = ct->client_port;
	return 0;
}

/* Fills the quoted L4 bytes from the packet's (l4): ports set to x's view, the UDP checksum moved by
 * sum_delta (the change of the pseudo-header's addresses) and the ports' change. A subprogram:
 * inlined, its byte moves took 250 bytes of its caller's frame. */
static __noinline void kp_icmp_cross_quote(struct kp_icmp_cross *x, const __u8 *l4, __u8 proto, __u32 sum_delta)
{
	__u32 delta = sum_delta;
	__be16 port;
	__sum16 *csum;

	__builtin_memcpy(x->l4, l4, KP_ICMP_CROSS_QUOTE);
	__builtin_memcpy(&port, x->l4, sizeof(port));
	delta += (__u16)~port + (__u16)x->qsport;
	__builtin_memcpy(x->l4, &x->qsport, sizeof(port));
	__builtin_memcpy(&port, x->l4 + 2, sizeof(port));
	delta += (__u16)~port + (__u16)x->qdport;
	__builtin_memcpy(x->l4 + 2, &x->qdport, sizeof(port));
	x->proto = proto;
	/* UDP's checksum is in the 8 bytes (0: none, left so); TCP's lies past them */
	if (proto != IPPROTO_UDP)
		return;
	csum = (__sum16 *)(x->l4 + KP_UDP_CSUM_OFF);
	if (*csum)
		*csum = kp_udp_csum_fixup((__sum16)~kp_csum_fold((__u16)~*csum + delta));
}

#endif /* KP_ICMP_CROSS_H */
