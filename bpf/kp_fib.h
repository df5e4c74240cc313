/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_fib.h: route a rewritten IPv4 or IPv6 packet with a cached bpf_fib_lookup result and redirect it
 * via kp_tx_ports. */
#ifndef KP_FIB_H
#define KP_FIB_H

#include "kp_parse.h"
#include "kp_csum.h"
#include "kp_maps.h"
#include "kp_stats.h"

/* kp_nexthop's key: the destination as a v4-mapped address (IPv6 destinations slot in as they are). */
static __always_inline void kp_fib_addr_key(__u8 *key, __be32 v4)
{
	__builtin_memset(key, 0, 10);
	key[10] = 0xff;
	key[11] = 0xff;
	__builtin_memcpy(key + 12, &v4, sizeof(v4));
}

#define KP_AF_INET 2
#define KP_AF_INET6 10
#define KP_IPV6_FLOWINFO_MASK 0x0FFFFFFF
/* Not an XDP action: the packet is larger than the route's MTU (*mtu); the caller decides. */
#define KP_TX_FRAG_NEEDED 0x100

/* A packet of len bytes (L3) longer than the MTU of the device it came in on is an aggregate: generic
 * (skb) XDP sees GRO'd and TSO'd skbs whole, up to 64 KB, and each of their segments came in, or goes
 * out, within that MTU (*in_mtu). The kernel checks such a packet per segment (skb_gso_validate_
 * network_len), not whole. */
static __always_inline int kp_aggregate(struct xdp_md *ctx, __u32 len, __u32 *in_mtu)
{
	*in_mtu = len;
	return bpf_check_mtu(ctx, 0, in_mtu, 0, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED;
}

/* bpf_fib_lookup of a filled request into *h; the BPF_FIB_LKUP_RET_* code. */
static __always_inline int kp_fib_lookup(struct xdp_md *ctx, struct bpf_fib_lookup *fib, struct kp_hop *h, __u32 *mtu)
{
	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);

	kp_stat_inc(KP_STAT_FIB_LOOKUP);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		*mtu = fib->mtu_result;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	h->ifindex = fib->ifindex;
	__builtin_memcpy(h->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(h->smac, fib->smac, ETH_ALEN);
	h->mtu = fib->mtu_result;
	h->redirect = bpf_redirect_map(&kp_tx_ports, fib->ifindex, XDP_PASS) == XDP_REDIRECT;
	return rc;
}

/* A FIB lookup for the packet's destination into *h; the BPF_FIB_LKUP_RET_* code. Whether the
 * egress may be redirected to is decided here, before the packet is touched. A subprogram: a
 * cache miss, once a second per destination, and its lookup struct stays off the hot stack. */
static __noinline int kp_fib_resolve(struct xdp_md *ctx, const struct iphdr *ip, struct kp_hop *h, __u32 *mtu)
{
	struct bpf_fib_lookup fib = {};

	fib.family = KP_AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	return kp_fib_lookup(ctx, &fib, h, mtu);
}

/* The same for an IPv6 packet (l4 is the protocol after its extension headers). */
static __noinline int kp_fib_resolve6(struct xdp_md *ctx, const struct ipv6hdr *ip6, __u8 l4, struct kp_hop *h,
				      __u32 *mtu)
{
	struct bpf_fib_lookup fib = {};
	__be32 flow;

	fib.family = KP_AF_INET6;
	__builtin_memcpy(&flow, ip6, sizeof(flow));
	fib.flowinfo = flow & bpf_htonl(KP_IPV6_FLOWINFO_MASK);
	fib.l4_protocol = l4;
	fib.tot_len = KP_IPV6_HLEN + bpf_ntohs(ip6->payload_len);
	__builtin_memcpy(fib.ipv6_src, ip6->saddr.in6_u.u6_addr8, KP_ADDR_LEN);
	__builtin_memcpy(fib.ipv6_dst, ip6->daddr.in6_u.u6_addr8, KP_ADDR_LEN);
	fib.ifindex = ctx->ingress_ifindex;
	return kp_fib_lookup(ctx, &fib, h, mtu);
}

/* The packet's hop limit (TTL): at 1 or below the kernel answers time exceeded, kpbpf passes it. */
static __always_inline int kp_hops_left(const struct kp_pkt *pkt, const int v6)
{
	return v6 ? pkt->ip6->hop_limit > 1 : pkt->ip->ttl > 1;
}

/* Sends the packet to next hop h: XDP_REDIRECT with TTL and MACs rewritten, XDP_PASS (left as it
 * is) when h may not be redirected to, KP_TX_FRAG_NEEDED (*mtu set) when it is bigger than h's MTU.
 * An aggregate whose segments may not fit h's MTU goes to the kernel, which segments it and answers
 * for a segment too big itself. */
static __always_inline int kp_hop_send(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_hop *h, __u32 *mtu,
				       const int v6)
{
	struct iphdr *ip = pkt->ip;
	__be16 old_word, new_word;
	__u32 len = v6 ? KP_IPV6_HLEN + bpf_ntohs(pkt->ip6->payload_len) : bpf_ntohs(ip->tot_len);
	__u32 in_mtu;

	if (len > h->mtu) {
		if (!kp_aggregate(ctx, len, &in_mtu)) {
			*mtu = h->mtu;
			return KP_TX_FRAG_NEEDED;
		}
		if (in_mtu > h->mtu)
			return XDP_PASS;
	}
	if (!h->redirect || bpf_redirect_map(&kp_tx_ports, h->ifindex, XDP_PASS) != XDP_REDIRECT)
		return XDP_PASS;
	if (v6) {
		pkt->ip6->hop_limit--; /* no header checksum */
		__builtin_memcpy(pkt->eth->h_dest, h->dmac, ETH_ALEN);
		__builtin_memcpy(pkt->eth->h_source, h->smac, ETH_ALEN);
		return XDP_REDIRECT;
	}
	/* TTL shares a 16-bit checksum word with the protocol. */
	__builtin_memcpy(&old_word, &ip->ttl, sizeof(old_word));
	ip->ttl--;
	__builtin_memcpy(&new_word, &ip->ttl, sizeof(new_word));
	ip->check = kp_csum_replace2(ip->check, old_word, new_word);
	__builtin_memcpy(pkt->eth->h_dest, h->dmac, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_source, h->smac, ETH_ALEN);
	return XDP_REDIRECT;
}

/* The next hop of the packet's destination from kp_nexthop while it is younger than
 * KP_NEXTHOP_TTL_MS, else from a FIB lookup (stored for the next packets). NULL with *act set to
 * XDP_PASS or KP_TX_FRAG_NEEDED (*mtu) when there is no usable route. */
static __always_inline struct kp_nexthop *kp_nexthop_get(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu,
							 __u64 now, int *act, const int v6)
{
	struct kp_nexthop *nh;
	struct kp_scratch *s;
	__u8 daddr[KP_ADDR_LEN];
	int rc;

	*act = XDP_PASS;
	if (v6)
		__builtin_memcpy(daddr, pkt->ip6->daddr.in6_u.u6_addr8, KP_ADDR_LEN);
	else
		kp_fib_addr_key(daddr, pkt->ip->daddr);
	nh = bpf_map_lookup_elem(&kp_nexthop, daddr);
	if (nh && now - nh->checked_ns <= KP_NEXTHOP_TTL_MS * 1000000ULL)
		return nh;
	s = kp_scratch_get();
	if (!s)
		return NULL;
	__builtin_memset(&s->nh, 0, sizeof(s->nh));
	if (v6)
		rc = kp_fib_resolve6(ctx, pkt->ip6, pkt->proto, &s->nh.hop, mtu);
	else
		rc = kp_fib_resolve(ctx, pkt->ip, &s->nh.hop, mtu);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		__u32 len = v6 ? KP_IPV6_HLEN + bpf_ntohs(pkt->ip6->payload_len) : bpf_ntohs(pkt->ip->tot_len);
		__u32 in_mtu;

		/* An aggregate goes to the kernel, which checks it per segment (kp_hop_send). */
		*act = kp_aggregate(ctx, len, &in_mtu) ? XDP_PASS : KP_TX_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return NULL;
	s->nh.checked_ns = now;
	bpf_map_update_elem(&kp_nexthop, daddr, &s->nh, BPF_ANY);
	return &s->nh;
}

/* Routes a packet with the next hop of its destination (kp_nexthop_get), so most packets make no
 * FIB lookup; a route or neighbour change takes effect within KP_NEXTHOP_TTL_MS. The kernel sends
 * ICMP time exceeded for TTL 1; kpbpf passes such packets. */
static __always_inline int kp_fib_redirect(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu, __u64 now, const int v6)
{
	struct kp_nexthop *nh;
	int act;

	if (!kp_hops_left(pkt, v6))
		return XDP_PASS;
	nh = kp_nexthop_get(ctx, pkt, mtu, now, &act, v6);
	if (!nh)
		return act;
	return kp_hop_send(ctx, pkt, &nh->hop, mtu, v6);
}

/* The same with the next hop kept in a reply entry (its connection's way to the client), copied
 * from the destination's cache: a busy connection reads only its own entry, a new one costs a
 * lookup in the small destination cache rather than a FIB lookup per connection. */
static __always_inline int kp_fib_redirect_ct(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu, __u64 now,
					      struct kp_ct *ct, const int v6)
{
	__u32 stamp = (__u32)(now >> 20) | 1; /* about ms; never 0 (0 = not looked up) */
	struct kp_nexthop *nh;
	struct kp_hop h = {};
	int act;

	if (!kp_hops_left(pkt, v6))
		return XDP_PASS;
	if (!ct->hop_checked || stamp - ct->hop_checked > KP_NEXTHOP_TTL_MS) {
		nh = kp_nexthop_get(ctx, pkt, mtu, now, &act, v6);
		if (!nh)
			return act;
		h = nh->hop;
		ct->peer.hop.ifindex = h.ifindex;
		__builtin_memcpy(ct->peer.hop.dmac, h.dmac, ETH_ALEN);
		__builtin_memcpy(ct->peer.hop.smac, h.smac, ETH_ALEN);
		ct->hop_mtu = h.mtu;
		if (h.redirect)
			ct->flags |= KP_CT_F_HOP_REDIRECT;
		else
			ct->flags &= ~KP_CT_F_HOP_REDIRECT;
		/* As old as the destination's entry, so the copy goes stale no later than it. */
		ct->hop_checked = (__u32)(nh->checked_ns >> 20) | 1;
	} else {
		h.ifindex = ct->peer.hop.ifindex;
		__builtin_memcpy(h.dmac, ct->peer.hop.dmac, ETH_ALEN);
		__builtin_memcpy(h.smac, ct->peer.hop.smac, ETH_ALEN);
		h.mtu = ct->hop_mtu;
		h.redirect = !!(ct->flags & KP_CT_F_HOP_REDIRECT);
	}
	return kp_hop_send(ctx, pkt, &h, mtu, v6);
}

/* The same toward a forward packet's backend, with the next hop kept per backend in an array: an
 * established forward packet makes no lookup call for it. Refreshed from the destination cache as
 * kp_fib_redirect_ct is, and at once when the control plane bumps hop_gen (it does when redirect
 * targets change, as it flushes kp_nexthop; reply entries' copies follow within KP_NEXTHOP_TTL_MS). CPUs refreshing one entry at once write the same values; when a route or
 * neighbour changes just then, a packet may leave with a mix of the old and new next hop. */
/* Refreshes a per-backend copy from the destination cache: 0, or the action when there is no
 * usable route. A subprogram: once a second per backend, and its locals stay off the hot stack. */
static __noinline int kp_be_hop_refresh(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu, struct kp_be_hop *bh,
					 const int v6)
{
	struct kp_nexthop *nh;
	int act;

	nh = kp_nexthop_get(ctx, pkt, mtu, pkt->now, &act, v6);
	if (!nh)
		return act;
	bh->hop = nh->hop;
	bh->checked_ns = nh->checked_ns;
	return 0;
}

static __always_inline int kp_fib_redirect_be(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu, __u64 now,
					      __u32 be_id, __u32 be_gen, __u32 hop_gen, const int v6)
{
	struct kp_be_hop *bh = bpf_map_lookup_elem(&kp_be_hops, &be_id);
	int act;

	if (!bh)
		return kp_fib_redirect(ctx, pkt, mtu, now, v6);
	if (!kp_hops_left(pkt, v6))
		return XDP_PASS;
	if (!bh->checked_ns || bh->hop_gen != hop_gen || bh->be_gen != be_gen ||
	    now - bh->checked_ns > KP_NEXTHOP_TTL_MS * 1000000ULL) {
		act = kp_be_hop_refresh(ctx, pkt, mtu, bh, v6);
		if (act)
			return act;
		bh->hop_gen = hop_gen;
		bh->be_gen = be_gen;
	}
	return kp_hop_send(ctx, pkt, &bh->hop, mtu, v6);
}

#endif /* KP_FIB_H */
