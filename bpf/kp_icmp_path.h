/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_icmp_path.h: ICMP and ICMPv6 packets: errors about kpbpf's connections translated back to
 * their client or backend, across families too (kp.bpf.c step 8) */
#ifndef KP_ICMP_PATH_H
#define KP_ICMP_PATH_H

#include "kp_maps.h"

/* Not an XDP action: an ICMP error about a connection across families; the program's top rebuilds it
 * for the client (kp_icmp_cross), where the stack has room for the rebuild and its route. */
#define KP_TX_ICMP_CROSS 0x103

/* An ICMPv4 error about a connection across families becomes ICMPv6 in two steps, each a subprogram
 * of its own so their frames never stack: what it will say (into the scratch's ic), then the frame
 * (110 bytes, see kp_icmp_cross.h). It is about a NAT64 connection (to its client) or a NAT46 one's
 * reply (to its backend). 0, or -1 to pass it untouched. */
static __noinline int kp_icmp_cross_prep4(struct kp_pkt *pkt, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	__u8 qsrc[KP_ADDR_LEN], qdst[KP_ADDR_LEN];
	struct kp_icmp_cross *x;
	struct kp_icmp_err e;
	__u64 now = kp_now();
	__u32 delta;

	if (!s || pkt->vlan || kp_icmp_err_parse(pkt, &e))
		return -1;
	x = &s->ic;
	kp_addr_from_v4(qsrc, e.in_ip->saddr);
	kp_addr_from_v4(qdst, e.in_ip->daddr);
	if (kp_icmp_cross_owner(s, qsrc, qdst, e.in_ports[0], e.in_ports[1], e.in_proto, cfg, now) &&
	    kp_icmp_cross_reply_owner(s, qsrc, qdst, e.in_ports[0], e.in_ports[1], e.in_proto, cfg, now))
		return -1;
	if (kp_icmp_map_4to6(e.icmp->type, e.icmp->code, e.icmp->un.gateway, x))
		return -1;
	/* the quoted pseudo-header's IPv4 addresses become the receiver's view's IPv6 ones */
	delta = kp_xlate_sum4(e.in_ip->saddr, 1) + kp_xlate_sum4(e.in_ip->daddr, 1) + kp_xlate_sum16(x->client, 0) +
		kp_xlate_sum16(x->vip, 0);
	kp_icmp_cross_quote(x, (void *)e.in_ports, e.in_proto, delta);
	x->ttl = e.in_ip->ttl;
	x->tos = e.in_ip->tos;
	x->in_len = bpf_ntohs(e.in_ip->tot_len) - sizeof(struct iphdr);
	__builtin_memcpy(x->macs, pkt->eth, sizeof(x->macs));
	return 0;
}

static __noinline int kp_icmp_cross_build6(struct xdp_md *ctx, struct kp_pkt *pkt)
{
	struct kp_scratch *s = kp_scratch_get();
	struct ipv6hdr *ip6, *in6;
	struct kp_icmp_cross *x;
	struct icmp6hdr *icmp;
	void *data, *end;
	__s64 sum;

	if (!s)
		return -1;
	x = &s->ic;
	if (bpf_xdp_adjust_head(ctx, -(int)(KP_ICMP_CROSS_LEN6 - KP_ICMP_CROSS_LEN4)))
		return -1;
	if (pkt->len > KP_ICMP_CROSS_LEN4 && bpf_xdp_adjust_tail(ctx, -(int)(pkt->len - KP_ICMP_CROSS_LEN4)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + KP_ICMP_CROSS_LEN6 > end)
		return -1;
	__builtin_memcpy(data, x->macs, sizeof(x->macs));
	((struct ethhdr *)data)->h_proto = bpf_htons(ETH_P_IPV6);
	ip6 = data + ETH_HLEN;
	icmp = (void *)(ip6 + 1);
	in6 = (void *)(icmp + 1);
	__builtin_memset(ip6, 0, sizeof(*ip6));
	ip6->version = 6;
	ip6->payload_len = bpf_htons(KP_ICMP_CROSS_LEN6 - ETH_HLEN - sizeof(*ip6));
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = KP_ICMP_CROSS_HOPS;
	__builtin_memcpy(ip6->saddr.in6_u.u6_addr8, x->vip, KP_ADDR_LEN);
	__builtin_memcpy(ip6->daddr.in6_u.u6_addr8, x->client, KP_ADDR_LEN);
	icmp->icmp6_type = x->type;
	icmp->icmp6_code = x->code;
	icmp->icmp6_cksum = 0;
	icmp->icmp6_dataun.un_data32[0] = x->rest;
	__builtin_memset(in6, 0, sizeof(*in6));
	in6->version = 6;
	in6->priority = x->tos >> 4;
	in6->flow_lbl[0] = (x->tos & 0xf) << 4;
	in6->payload_len = bpf_htons(x->in_len);
	in6->nexthdr = x->proto;
	in6->hop_limit = x->ttl;
	__builtin_memcpy(in6->saddr.in6_u.u6_addr8, x->client, KP_ADDR_LEN);
	__builtin_memcpy(in6->daddr.in6_u.u6_addr8, x->vip, KP_ADDR_LEN);
	__builtin_memcpy((void *)(in6 + 1), x->l4, KP_ICMP_CROSS_QUOTE);
	sum = bpf_csum_diff(NULL, 0, (void *)icmp, KP_ICMP_CROSS_LEN6 - ETH_HLEN - sizeof(*ip6), 0);
	if (sum < 0)
		return -1;
	icmp->icmp6_cksum = (__sum16)~kp_csum_fold64((__u32)sum + kp_pseudo_sum_v6(x->vip, x->client, IPPROTO_ICMPV6,
										   KP_ICMP_CROSS_LEN6 - ETH_HLEN - sizeof(*ip6)));
	pkt->eth = data;
	pkt->data_end = end;
	pkt->ip6 = ip6;
	pkt->l4 = icmp;
	pkt->len = KP_ICMP_CROSS_LEN6;
	pkt->proto = IPPROTO_ICMPV6;
	pkt->l4_csum_state = 0;
	return 0;
}

/* The same for an ICMPv6 error, about a NAT46 connection or a NAT64 one's reply: ICMPv4 (70 bytes). */
static __noinline int kp_icmp_cross_prep6(struct kp_pkt *pkt, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_icmp_cross *x;
	struct kp_icmp6_err e;
	__be32 vip4, client4;
	__u64 now = kp_now();
	__u32 delta;

	if (!s || pkt->vlan || !kp_icmp6_quotable(pkt) || kp_icmp6_err_parse(pkt, &e))
		return -1;
	x = &s->ic;
	if (kp_icmp_cross_owner(s, e.in_ip6->saddr.in6_u.u6_addr8, e.in_ip6->daddr.in6_u.u6_addr8, e.in_ports[0],
				e.in_ports[1], e.in_proto, cfg, now) &&
	    kp_icmp_cross_reply_owner(s, e.in_ip6->saddr.in6_u.u6_addr8, e.in_ip6->daddr.in6_u.u6_addr8,
				      e.in_ports[0], e.in_ports[1], e.in_proto, cfg, now))
		return -1;
	if (kp_addr_to_v4(x->vip, &vip4) || kp_addr_to_v4(x->client, &client4) ||
	    kp_icmp_map_6to4(e.icmp->icmp6_type, e.icmp->icmp6_code, e.icmp->icmp6_dataun.un_data32[0], x))
		return -1;
	delta = kp_xlate_sum16(e.in_ip6->saddr.in6_u.u6_addr8, 1) + kp_xlate_sum16(e.in_ip6->daddr.in6_u.u6_addr8, 1) +
		kp_xlate_sum4(client4, 0) + kp_xlate_sum4(vip4, 0);
	kp_icmp_cross_quote(x, (void *)e.in_ports, e.in_proto, delta);
	x->ttl = e.in_ip6->hop_limit;
	x->tos = (e.in_ip6->priority << 4) | (e.in_ip6->flow_lbl[0] >> 4);
	x->in_len = bpf_ntohs(e.in_ip6->payload_len);
	__builtin_memcpy(x->macs, pkt->eth, sizeof(x->macs));
	return 0;
}

static __noinline int kp_icmp_cross_build4(struct xdp_md *ctx, struct kp_pkt *pkt)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_icmp_cross *x;
	struct iphdr *ip, *in;
	struct icmphdr *icmp;
	__be32 vip4, client4;
	void *data, *end;
	__s64 sum;

	if (!s)
		return -1;
	x = &s->ic;
	__builtin_memcpy(&vip4, x->vip + KP_V4MAPPED_PREFIX_LEN, sizeof(vip4));
	__builtin_memcpy(&client4, x->client + KP_V4MAPPED_PREFIX_LEN, sizeof(client4));
	if (bpf_xdp_adjust_head(ctx, KP_ICMP_CROSS_LEN6 - KP_ICMP_CROSS_LEN4))
		return -1;
	if (pkt->len > KP_ICMP_CROSS_LEN6 && bpf_xdp_adjust_tail(ctx, -(int)(pkt->len - KP_ICMP_CROSS_LEN6)))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + KP_ICMP_CROSS_LEN4 > end)
		return -1;
	__builtin_memcpy(data, x->macs, sizeof(x->macs));
	((struct ethhdr *)data)->h_proto = bpf_htons(ETH_P_IP);
	ip = data + ETH_HLEN;
	icmp = (void *)(ip + 1);
	in = (void *)(icmp + 1);
	ip->version = 4;
	ip->ihl = KP_IPV4_MIN_IHL;
	ip->tos = KP_IPTOS_PREC_INTERNETCONTROL;
	ip->tot_len = bpf_htons(KP_ICMP_CROSS_LEN4 - ETH_HLEN);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = KP_ICMP_CROSS_HOPS;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip4;
	ip->daddr = client4;
	in->version = 4;
	in->ihl = KP_IPV4_MIN_IHL;
	in->tos = x->tos;
	in->tot_len = bpf_htons(x->in_len + sizeof(*in));
	in->id = 0;
	in->frag_off = bpf_htons(KP_IP_DF);
	in->ttl = x->ttl;
	in->protocol = x->proto;
	in->check = 0;
	in->saddr = client4;
	in->daddr = vip4;
	sum = bpf_csum_diff(NULL, 0, (void *)in, sizeof(*in), 0);
	in->check = (__sum16)~kp_csum_fold((__u32)sum);
	sum = bpf_csum_diff(NULL, 0, (void *)ip, sizeof(*ip), 0);
	ip->check = (__sum16)~kp_csum_fold((__u32)sum);
	__builtin_memcpy((void *)(in + 1), x->l4, KP_ICMP_CROSS_QUOTE);
	icmp->type = x->type;
	icmp->code = x->code;
	icmp->checksum = 0;
	icmp->un.gateway = x->rest;
	sum = bpf_csum_diff(NULL, 0, (void *)icmp, KP_ICMP_CROSS_LEN4 - ETH_HLEN - sizeof(*ip), 0);
	icmp->checksum = (__sum16)~kp_csum_fold((__u32)sum);
	pkt->eth = data;
	pkt->data_end = end;
	pkt->ip = ip;
	pkt->l4 = icmp;
	pkt->len = KP_ICMP_CROSS_LEN4;
	pkt->proto = IPPROTO_ICMP;
	pkt->l4_csum_state = 0;
	return 0;
}

/* An ICMP error about a connection across families, rebuilt in the other family (v6: the error is
 * IPv6, so the new one is IPv4) and routed. Called from the program's top. */
static __always_inline int kp_icmp_cross(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	if (v6 ? kp_icmp_cross_prep6(pkt, cfg) : kp_icmp_cross_prep4(pkt, cfg)) {
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	}
	if (v6 ? kp_icmp_cross_build4(ctx, pkt) : kp_icmp_cross_build6(ctx, pkt)) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_ICMP_XLATE);
	return kp_transmit(ctx, pkt, cfg, !v6);
}

/* Is this ICMP error about a connection across families (kp_icmp_cross rebuilds it)? Its quote is a
 * forward packet as the backend got it (the reply entry's tuple, reversed) or a reply as the client
 * got it (the forward record's, reversed). */
static __always_inline int kp_icmp_is_cross(const __u8 *qsrc, const __u8 *qdst, __be16 qsport, __be16 qdport, __u8 proto)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_flow_key *rk;
	struct kp_ct *ct;

	if (!s)
		return 0;
	rk = &s->rk;
	kp_icmp_quote_key(rk, qsrc, qdst, qsport, qdport, proto, KP_DIR_REPLY);
	ct = bpf_map_lookup_elem(&kp_ct, rk);
	if (ct && (ct->flags & KP_CT_F_XLATE))
		return 1;
	rk->dir = KP_DIR_ORIG;
	ct = bpf_map_lookup_elem(&kp_ct, rk);
	return ct && (ct->flags & KP_CT_F_XLATE);
}

/* ICMPv6: as ICMP below; neighbour discovery, echo and the rest pass. */
static __always_inline int kp_handle_icmp6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_icmp6_err e;
	__u64 now;

	if (!s || kp_icmp6_err_parse(pkt, &e)) {
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	}
	now = kp_now();
	if (!kp_icmp6_to_client(pkt, &e, s, cfg, now) && !kp_icmp6_to_backend(pkt, &e, s, cfg, now)) {
		if (kp_icmp_is_cross(e.in_ip6->saddr.in6_u.u6_addr8, e.in_ip6->daddr.in6_u.u6_addr8, e.in_ports[0],
				     e.in_ports[1], e.in_proto))
			return KP_TX_ICMP_CROSS;
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	}
	kp_stat_inc(KP_STAT_ICMP_XLATE);
	return kp_transmit(ctx, pkt, cfg, 1);
}

/* ICMP: an error about a NATed connection is translated both ways; anything else passes. */
static __noinline int kp_handle_icmp(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	struct kp_icmp_err e;
	__u64 now;

	if (v6)
		return kp_handle_icmp6(ctx, pkt, cfg);
	if (kp_icmp_err_parse(pkt, &e)) {
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	}
	now = kp_now();
	if (!kp_icmp_to_client(pkt, &e, cfg, now) && !kp_icmp_to_backend(pkt, &e, cfg, now)) {
		__u8 qsrc[KP_ADDR_LEN], qdst[KP_ADDR_LEN];

		kp_addr_from_v4(qsrc, e.in_ip->saddr);
		kp_addr_from_v4(qdst, e.in_ip->daddr);
		if (kp_icmp_is_cross(qsrc, qdst, e.in_ports[0], e.in_ports[1], e.in_proto))
			return KP_TX_ICMP_CROSS;
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	}
	kp_stat_inc(KP_STAT_ICMP_XLATE);
	return kp_transmit(ctx, pkt, cfg, v6);
}

#endif /* KP_ICMP_PATH_H */
