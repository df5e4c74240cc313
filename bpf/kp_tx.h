/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_tx.h: after a rewrite: the route and transmit (redirect or the kernel), "fragmentation
 * needed" answers, and the NAT46/NAT64 paths that translate a packet and route it (kp.bpf.c step 7) */
#ifndef KP_TX_H
#define KP_TX_H

#include "kp_maps.h"

/* Step 7: after a rewrite, redirect when allowed and routable, else hand to the kernel. A
 * partial checksum is finished before a redirect; one that cannot be finished goes to the kernel.
 * KP_TX_FRAG_NEEDED (with *mtu) when the packet is too big for its route; nothing counted then.
 * A reply takes its connection's own next hop (ct), a forward packet its backend's (be, be_id). */
static __always_inline int kp_route(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, __u32 *mtu,
				    __u64 now, struct kp_ct *ct, const struct kp_backend *be, __u32 be_id, const int v6)
{
	int act = XDP_PASS;

	if (!(cfg->flags & KP_CONF_F_NO_FIB) && !pkt->vlan && pkt->l4_csum_state != KP_L4_CSUM_UNREAD) {
		if (ct)
			act = kp_fib_redirect_ct(ctx, pkt, mtu, now, ct, v6);
		else if (be)
			act = kp_fib_redirect_be(ctx, pkt, mtu, now, be_id, be->gen, cfg->hop_gen, v6);
		else
			act = kp_fib_redirect(ctx, pkt, mtu, now, v6);
	}
	if (act == KP_TX_FRAG_NEEDED)
		return act;
	if (act == XDP_REDIRECT)
		kp_l4_csum_finish(pkt);
	kp_stat_inc(act == XDP_REDIRECT ? KP_STAT_TX_REDIRECT : KP_STAT_TX_PASS);
	return act;
}

/* Routes a packet kpbpf wrote or rewrote only in its IP header (an ICMP message, a later
 * fragment): no L4 checksum to finish, and too big for the route goes to the kernel. */
static __always_inline int kp_transmit(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	__u32 mtu = 0;
	int act = XDP_PASS;

	if (!(cfg->flags & KP_CONF_F_NO_FIB) && !pkt->vlan)
		act = kp_fib_redirect(ctx, pkt, &mtu, kp_now(), v6);
	if (act != XDP_REDIRECT)
		act = XDP_PASS;
	kp_stat_inc(act == XDP_REDIRECT ? KP_STAT_TX_REDIRECT : KP_STAT_TX_PASS);
	return act;
}

/* IPv6 routers never fragment: a translated packet too big for its route always gets "packet too
 * big" (RFC 8201), its quote translated back. One with extension headers goes to the kernel, whose
 * answer the sender cannot match (their quote is not translated). */
static __always_inline int kp_too_big6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, int dir)
{
	struct kp_scratch *s = kp_scratch_get();
	__u32 mtu = pkt->mtu;
	__u64 now = kp_now();
	struct kp_icmp6_err e;
	__u32 ok;

	if (!s || !kp_icmp6_quotable(pkt)) {
		kp_stat_inc(KP_STAT_TX_PASS);
		return XDP_PASS;
	}
	if (kp_icmp6_error(ctx, pkt, ICMPV6_PKT_TOOBIG, 0, bpf_htonl(mtu)) || kp_icmp6_err_parse(pkt, &e)) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	ok = dir == KP_DIR_ORIG ? kp_icmp6_to_client(pkt, &e, s, cfg, now) : kp_icmp6_to_backend(pkt, &e, s, cfg, now);
	if (!ok) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_ICMP_TOO_BIG);
	return kp_transmit(ctx, pkt, cfg, 1);
}

/* A translated packet too big for the route to its backend (dir ORIG) or client (dir REPLY). With
 * DF, the kernel would answer "fragmentation needed" quoting the translated packet, which the
 * sender cannot match to its socket (XDP never sees that egress ICMP): answer here instead and
 * translate the quote back, so path-MTU discovery through a VIP works. Without DF the kernel
 * fragments it. */
static __noinline int kp_too_big(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, int dir, const int v6)
{
	__u32 mtu = pkt->mtu;
	__u64 now = kp_now();
	struct kp_icmp_err e;
	__u32 ok;

	if (v6)
		return kp_too_big6(ctx, pkt, cfg, dir);
	if (!(pkt->ip->frag_off & bpf_htons(KP_IP_DF))) {
		kp_stat_inc(KP_STAT_TX_PASS);
		return XDP_PASS;
	}
	if (kp_icmp_error(ctx, pkt, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, bpf_htonl(mtu & 0xffff)) ||
	    kp_icmp_err_parse(pkt, &e)) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	ok = dir == KP_DIR_ORIG ? kp_icmp_to_client(pkt, &e, cfg, now) : kp_icmp_to_backend(pkt, &e, cfg, now);
	if (!ok) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_ICMP_TOO_BIG);
	return kp_transmit(ctx, pkt, cfg, v6);
}

/* NAT46 and NAT64 (RFC 7915): a connection's packets change family on the way, and so does the
 * program that sees each direction, the client's family forward and the backend's for replies. The
 * connection is masqueraded (kp_ct_xlate_src), so both entries are keyed in their own direction's
 * family as any other connection's are. */

/* A translated packet too big for its route (pkt->mtu): the error goes to its sender in the sender's
 * family, quoting the packet as it was sent (the translation undone, to the addresses and ports of its
 * tuple key), with the MTU it has on the sender's side: 20 bytes less towards IPv4, 20 more towards
 * IPv6 (RFC 7915 4.4, 5.4). The packet is lost either way; without DF, an IPv4 sender ignores the
 * answer. Subprograms, one per direction of translation, as each program reaches only its own; called
 * from the top of the program (KP_TX_XLATE_TOO_BIG), where the stack has room for their chain. */
static __always_inline int kp_xlate_too_big(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					    const int out_v6)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_flow_key *key;
	__u32 mtu = pkt->mtu;
	__be32 s4, d4;
	int err;

	if (!s) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	key = &s->key;
	if (out_v6)
		err = kp_addr_to_v4(key->saddr, &s4) || kp_addr_to_v4(key->daddr, &d4) || kp_xlate_6to4(pkt, s4, d4);
	else
		err = kp_xlate_4to6(pkt, key->saddr, key->daddr) < 0; /* a quote needs no UDP checksum */
	if (err || !pkt->ports || !pkt->l4_csum) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_nat_port(pkt, &pkt->ports[0], key->sport);
	kp_nat_port(pkt, &pkt->ports[1], key->dport);
	if (out_v6) {
		mtu = mtu > KP_IPV4_MIN_MTU + KP_XLATE_GROWTH ? mtu - KP_XLATE_GROWTH : KP_IPV4_MIN_MTU;
		err = kp_icmp_error(ctx, pkt, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, bpf_htonl(mtu & 0xffff));
	} else {
		err = !kp_icmp6_quotable(pkt) ||
		      kp_icmp6_error(ctx, pkt, ICMPV6_PKT_TOOBIG, 0, bpf_htonl((mtu & 0xffff) + KP_XLATE_GROWTH));
	}
	if (err) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_ICMP_TOO_BIG);
	return kp_transmit(ctx, pkt, cfg, !out_v6);
}

static __noinline int kp_xlate_too_big_to4(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg)
{
	return kp_xlate_too_big(ctx, pkt, cfg, 1);
}

static __noinline int kp_xlate_too_big_to6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg)
{
	return kp_xlate_too_big(ctx, pkt, cfg, 0);
}

/* Not an XDP action: a translated packet is too big for its route (pkt->mtu); the program's top
 * answers its sender (kp_xlate_too_big_to4 or _to6, for the family the program received it in). */
#define KP_TX_XLATE_TOO_BIG 0x102

/* The end of a translation (rc from kp_xlate_*): the UDP checksum IPv6 needs, the verdict if the
 * packet cannot go on, else 0. */
static __always_inline int kp_xlate_check(struct kp_pkt *pkt, int rc)
{
	if (rc == KP_XLATE_OK_FILL)
		rc = kp_udp6_csum_fill(pkt) ? KP_XLATE_BROKEN : KP_XLATE_OK;
	if (rc == KP_XLATE_OK) {
		kp_stat_inc(KP_STAT_XLATE);
		return 0;
	}
	kp_stat_inc(rc == KP_XLATE_UNTOUCHED ? KP_STAT_DROP_XLATE : KP_STAT_DROP_MALFORMED);
	return XDP_DROP;
}

/* Routes a translated packet, now of family out_v6, by its destination's next hop (not the
 * backend's copy in kp_be_hops: that lookup would push these frames past the stack the call chains
 * have). Too big for the route: an IPv4 packet without DF (a translated fragment) goes to the
 * kernel, which fragments it further (RFC 7915 5.1); an IPv6 fragment is dropped (IPv6 routers do not
 * fragment, and the sender, which fragmented without DF, would ignore the error); anything else is
 * KP_TX_XLATE_TOO_BIG, its sender to be told. */
static __always_inline int kp_xlate_route(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					  __u64 now, const int out_v6)
{
	__u32 mtu = 0;
	int act = kp_route(ctx, pkt, cfg, &mtu, now, NULL, NULL, 0, out_v6);

	if (act != KP_TX_FRAG_NEEDED)
		return act;
	if (!out_v6 && !(pkt->ip->frag_off & bpf_htons(KP_IP_DF))) {
		kp_stat_inc(KP_STAT_TX_PASS);
		return XDP_PASS;
	}
	if (out_v6 && pkt->ip6->nexthdr == KP_NEXTHDR_FRAG) {
		kp_stat_inc(KP_STAT_DROP_XLATE);
		return XDP_DROP;
	}
	pkt->mtu = mtu;
	return KP_TX_XLATE_TOO_BIG;
}

/* Steps 5-7 across families: the forward packet (of family v6) becomes the backend's, from the
 * connection's source (pick->masq_addr, or the scratch's masq) to the backend. */
static __always_inline int kp_xlate_forward(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					    const struct kp_ct_pick *pick, const int v6)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_backend *be = pick->be;
	int rc;

	if (!s || !be) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	rc = v6 ? kp_xlate_6to4(pkt, pick->masq_addr, pick->be_addr) : kp_xlate_4to6(pkt, s->masq, be->addr);
	if (rc >= KP_XLATE_OK && (!pkt->ports || !pkt->l4_csum))
		rc = KP_XLATE_BROKEN; /* cannot happen: this packet has its L4 header */
	if (rc >= KP_XLATE_OK) {
		kp_nat_port(pkt, &pkt->ports[1], be->port);
		kp_nat_port(pkt, &pkt->ports[0], pick->nat_port);
	}
	rc = kp_xlate_check(pkt, rc);
	if (rc)
		return rc;
	kp_stat_inc(KP_STAT_DNAT);
	kp_be_stats_add(pick->be_id, pkt->len);
	return kp_xlate_route(ctx, pkt, cfg, pick->now, !v6);
}

/* NAT46 (an IPv4 packet to an IPv6 backend) and NAT64. Subprograms: cross-family VIPs only. */
static __noinline int kp_xlate_forward4(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					const struct kp_ct_pick *pick)
{
	return kp_xlate_forward(ctx, pkt, cfg, pick, 0);
}

static __noinline int kp_xlate_forward6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					const struct kp_ct_pick *pick)
{
	return kp_xlate_forward(ctx, pkt, cfg, pick, 1);
}

/* A reply across families (rv is flagged KP_CT_F_XLATE): back to the client's family, from the VIP to
 * the client's own address and port. */
static __always_inline int kp_xlate_reply(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					  const struct kp_ct *rv, const int v6)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_vip_stats *vs;
	__be32 vip4, client4;
	int rc;

	if (!s) {
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	if (v6) {
		if (kp_addr_to_v4(rv->vip_addr, &vip4) || kp_addr_to_v4(rv->peer.client_addr, &client4))
			rc = KP_XLATE_BROKEN; /* not a NAT46 entry: cannot happen */
		else
			rc = kp_xlate_6to4(pkt, vip4, client4);
	} else {
		rc = kp_addr_is_v4(rv->vip_addr) ? KP_XLATE_BROKEN : kp_xlate_4to6(pkt, rv->vip_addr, rv->peer.client_addr);
	}
	if (rc >= KP_XLATE_OK && (!pkt->ports || !pkt->l4_csum))
		rc = KP_XLATE_BROKEN; /* cannot happen: this packet has its L4 header */
	if (rc >= KP_XLATE_OK) {
		kp_nat_port(pkt, &pkt->ports[0], rv->vip_port);
		kp_nat_port(pkt, &pkt->ports[1], rv->client_port);
	}
	rc = kp_xlate_check(pkt, rc);
	if (rc)
		return rc;
	kp_stat_inc(KP_STAT_SNAT);
	vs = kp_vip_stats_get(rv->vip_id);
	if (vs) {
		vs->reply_pkts += 1;
		vs->reply_bytes += pkt->len;
	}
	return kp_xlate_route(ctx, pkt, cfg, pkt->now, !v6);
}

/* A NAT46 reply (IPv6 from the backend) and a NAT64 one. Subprograms, as the forward ones. */
static __noinline int kp_xlate_reply6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
				      const struct kp_ct *rv)
{
	return kp_xlate_reply(ctx, pkt, cfg, rv, 1);
}

static __noinline int kp_xlate_reply4(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
				      const struct kp_ct *rv)
{
	return kp_xlate_reply(ctx, pkt, cfg, rv, 0);
}

/* IPv6 rewrites are subprograms: their 16-byte fields would otherwise take room in the IPv6 program's
 * frame, which every call chain (kp_ct_new's deepest) shares. */

#endif /* KP_TX_H */
