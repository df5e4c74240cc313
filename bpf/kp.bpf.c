// SPDX-License-Identifier: GPL-2.0-only
/* kp.bpf.c: kube-proxy data plane as XDP: VIP DNAT with Maglev and a connection table, reply SNAT.
 * The steps follow docs/DESIGN.md "Per packet". */
#include "kp_shared.h"
#include "kp_parse.h"
#include "kp_csum.h"
#include "kp_maps.h"
#include "kp_stats.h"
#include "kp_hash.h"
#include "kp_nat.h"
#include "kp_lb.h"
#include "kp_ct.h"
#include "kp_icmp.h"
#include "kp_icmp_xlate.h"
#include "kp_icmp6.h"
#include "kp_frag.h"
#include "kp_fib.h"
#include "kp_sock.h"
#include "kp_xlate.h"
#include "kp_icmp_cross.h"

/* The VIP and reply paths and the cold paths (ICMP, fragments, rejects, malformed headers, new
 * connections) are subprograms of their own: a frame is only on the stack while it runs, which
 * keeps every call chain within the 512-byte BPF stack. */

/* Verdict and counter of a packet we do not handle; it is never written to. */
static __always_inline int kp_unhandled(int rc)
{
	switch (rc) {
	case KP_PARSE_NOT_IP:
		kp_stat_inc(KP_STAT_PASS_NOT_IP);
		return XDP_PASS;
	case KP_PARSE_NOT_L4:
		kp_stat_inc(KP_STAT_PASS_NOT_L4);
		return XDP_PASS;
	case KP_PARSE_NOT_OURS:
		kp_stat_inc(KP_STAT_PASS_NO_MATCH);
		return XDP_PASS;
	default:
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
}

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

/* DNAT of a forward packet to backend be, the source port (and address, if masqueraded: the
 * scratch's masq) being what the backend sees. */
static __noinline void kp_dnat6(struct kp_pkt *pkt, const struct kp_backend *be, __be16 nat_port, int masq)
{
	struct kp_scratch *s = masq ? kp_scratch_get() : NULL;

	kp_nat_ipv6(pkt, pkt->ip6->daddr.in6_u.u6_addr8, &pkt->ports[1], be->addr, be->port);
	if (s)
		kp_nat_ipv6_more(pkt, pkt->ip6->saddr.in6_u.u6_addr8, &pkt->ports[0], s->masq, nat_port);
	else if (nat_port != pkt->ports[0])
		kp_nat_port(pkt, &pkt->ports[0], nat_port);
	kp_nat6_done(pkt);
}

/* SNAT of a reply of the connection whose reply entry is rv: from the VIP, to the client's port (and
 * address, if masqueraded). */
static __noinline void kp_snat6(struct kp_pkt *pkt, const struct kp_ct *rv)
{
	kp_nat_ipv6(pkt, pkt->ip6->saddr.in6_u.u6_addr8, &pkt->ports[0], rv->vip_addr, rv->vip_port);
	if (rv->flags & KP_CT_F_MASQ)
		kp_nat_ipv6_more(pkt, pkt->ip6->daddr.in6_u.u6_addr8, &pkt->ports[1], rv->peer.client_addr,
				 rv->client_port);
	else if (rv->client_port != pkt->ports[1])
		kp_nat_port(pkt, &pkt->ports[1], rv->client_port);
	kp_nat6_done(pkt);
}

/* Step 3: rv is the reply entry of the packet's tuple (s->rk). A reply from a backend of a live NATed connection gets its source set back to the VIP
 * (and the client's own port back, if it was remapped). Most replies need their reply entry only;
 * the ones that may move the connection's state go through its forward record. Anything else
 * passes untouched. */
/* The slow path of a reply: its forward record decides, and the connection's state moves. 0 to
 * translate it, or XDP_PASS for the leftover of a connection that ended (removed, never translated
 * because of it). A subprogram: handshakes, closes and idle connections only. */
static __noinline int kp_reply_slow(const struct kp_pkt *pkt, struct kp_scratch *s, const struct kp_config *cfg,
				    struct kp_ct *rv)
{
	struct kp_ct *ct = kp_ct_owner_in(&s->rk, rv, cfg, pkt->now, &s->fk);

	if (!ct) {
		bpf_map_delete_elem(&kp_ct, &s->rk);
		kp_stat_inc(KP_STAT_CT_STALE);
		kp_stat_inc(KP_STAT_PASS_NO_MATCH);
		return XDP_PASS;
	}
	kp_ct_track(ct, pkt, KP_DIR_REPLY, pkt->now);
	if (rv->state != ct->state)
		rv->state = ct->state;
	return 0;
}

static __always_inline int kp_handle_reply(struct xdp_md *ctx, struct kp_pkt *pkt, struct kp_scratch *s,
					   const struct kp_config *cfg, struct kp_ct *rv, const int v6)
{
	__u64 now = pkt->now;
	struct kp_vip_stats *vs;
	__be32 vip_addr;
	__u32 mtu = 0;
	int act, masq;

	if (!kp_ct_reply_fast(rv, pkt, cfg, now)) {
		act = kp_reply_slow(pkt, s, cfg, rv);
		if (act)
			return act;
	}
	if (rv->last_seen_ns != now)
		rv->last_seen_ns = now;
	if (rv->flags & KP_CT_F_XLATE)
		return v6 ? kp_xlate_reply6(ctx, pkt, cfg, rv) : kp_xlate_reply4(ctx, pkt, cfg, rv);
	masq = rv->flags & KP_CT_F_MASQ;
	if (v6) {
		if (kp_addr_is_v4(rv->vip_addr)) {
			kp_stat_inc(KP_STAT_PASS_NO_MATCH);
			return XDP_PASS;
		}
		kp_snat6(pkt, rv);
	} else if (kp_addr_to_v4(rv->vip_addr, &vip_addr)) {
		kp_stat_inc(KP_STAT_PASS_NO_MATCH);
		return XDP_PASS;
	} else {
		kp_snat_ipv4(pkt, vip_addr, rv->vip_port);
		if (masq) {
			/* Back to the client's own address; its next hop is looked up by destination, as
			 * the entry keeps that address where others cache their hop. */
			__be32 client;

			if (kp_addr_to_v4(rv->peer.client_addr, &client)) {
				kp_stat_inc(KP_STAT_DROP_MALFORMED);
				return XDP_DROP;
			}
			kp_nat_ipv4_more(pkt, &pkt->ip->daddr, &pkt->ports[1], client, rv->client_port);
		} else if (rv->client_port != pkt->ports[1]) {
			kp_nat_port(pkt, &pkt->ports[1], rv->client_port);
		}
	}
	kp_stat_inc(KP_STAT_SNAT);
	vs = kp_vip_stats_get(rv->vip_id);
	if (vs) {
		vs->reply_pkts += 1;
		vs->reply_bytes += pkt->len;
	}
	act = kp_route(ctx, pkt, cfg, &mtu, now, masq ? NULL : rv, NULL, 0, v6);
	pkt->mtu = mtu;
	return act; /* KP_TX_FRAG_NEEDED: the caller answers */
}

/* Neither for a VIP nor a reply: passes, unless it would be taken for a NATed connection's reply. */
static __noinline int kp_handle_no_match(const struct kp_pkt *pkt, const struct kp_flow_key *key, const struct kp_config *cfg)
{
	int rc = kp_ct_direct(key, pkt, cfg);

	if (rc < 0) {
		kp_stat_inc(KP_STAT_DROP_CT_CLASH);
		return XDP_DROP;
	}
	if (rc > 0)
		kp_stat_inc(KP_STAT_CT_STALE);
	kp_stat_inc(KP_STAT_PASS_NO_MATCH);
	return XDP_PASS;
}

/* A VIP without a serving endpoint: ICMP port unreachable to the client, as kube-proxy rejects. */
static __noinline int kp_reject(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	if (v6 ? !kp_icmp6_quotable(pkt) || kp_icmp6_error(ctx, pkt, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0)
	       : kp_icmp_error(ctx, pkt, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0)) {
		kp_stat_inc(KP_STAT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_REJECT);
	return kp_transmit(ctx, pkt, cfg, v6);
}

/* A new masqueraded connection: counted, and so is a port taken from an unreplied UDP flow
 * (kp_ct_claim leaves that in the scratch). A subprogram: new masqueraded connections only. */
static __noinline void kp_masq_count(void)
{
	struct kp_scratch *s = kp_scratch_get();

	kp_stat_inc(KP_STAT_MASQ);
	if (s && s->evicted) {
		s->evicted = 0;
		kp_stat_inc(KP_STAT_MASQ_EVICT);
	}
}

/* Does the VIP have a table of all its backends (any endpoint, anywhere)? Asked on the no-server
 * path only. */
static __always_inline int kp_vip_has_table(__u32 vip_id)
{
	__u64 *ref = bpf_map_lookup_elem(&kp_maglev_ref, &vip_id);

	return ref && KP_MAGLEV_REF_LEN(*(volatile __u64 *)ref) != 0;
}

/* Not an XDP action: the VIP has no serving endpoint; the caller rejects the packet. */
#define KP_TX_REJECT 0x101

/* Steps 5-6: the VIP packet's connection is known (pick): count it, DNAT to its backend, route.
 * KP_TX_REJECT or KP_TX_FRAG_NEEDED leave the answer to the caller, whose stack has room for it. */
static __always_inline int kp_vip_forward(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 vip_id,
				     const struct kp_config *cfg, const struct kp_ct_pick *pick, const int v6)
{
	struct kp_vip_stats *vs;
	int kind = pick->kind;
	__u32 mtu = 0;
	int act;

	if (kind == KP_CT_CLASH) {
		kp_stat_inc(pick->masq ? KP_STAT_DROP_MASQ_PORTS : KP_STAT_DROP_CT_CLASH);
		return XDP_DROP;
	}
	vs = kp_vip_stats_get(vip_id);
	if (vs) {
		vs->bytes += pkt->len;
		if (kind == KP_CT_EXISTING)
			vs->existing_pkts += 1;
		else if (kind == KP_CT_FIRST)
			vs->first_pkts += 1;
		else if (kind == KP_CT_UNTRACKED)
			vs->untracked_pkts += 1;
		else
			vs->no_server_pkts += 1;
	}
	if (kind == KP_CT_NO_SERVER || !pick->be) {
		if (pick->local_only && kp_vip_has_table(vip_id)) {
			/* kube-proxy drops a connection to a policy-local service without local endpoints; a
			 * service without any endpoint it rejects, whatever its policy (CategorizeEndpoints'
			 * hasAnyEndpoints). */
			kp_stat_inc(KP_STAT_DROP_NO_LOCAL);
			return XDP_DROP;
		}
		return KP_TX_REJECT;
	}
	if (pick->loose)
		kp_stat_inc(KP_STAT_CT_LOOSE);
	if (pick->remapped)
		kp_stat_inc(KP_STAT_CT_REMAP);
	if (pick->masq)
		kp_masq_count();
	if (pick->v6 != v6)
		return v6 ? kp_xlate_forward6(ctx, pkt, cfg, pick) : kp_xlate_forward4(ctx, pkt, cfg, pick);
	if (v6) {
		kp_dnat6(pkt, pick->be, pick->nat_port, pick->masq6);
	} else {
		kp_dnat_ipv4(pkt, pick->be_addr, pick->be->port);
		if (pick->masq_addr)
			kp_nat_ipv4_more(pkt, &pkt->ip->saddr, &pkt->ports[0], pick->masq_addr, pick->nat_port);
		else if (pick->nat_port != pkt->ports[0])
			kp_nat_port(pkt, &pkt->ports[0], pick->nat_port);
	}
	kp_stat_inc(KP_STAT_DNAT);
	kp_be_stats_add(pick->be_id, pkt->len);
	act = kp_route(ctx, pkt, cfg, &mtu, pick->now, NULL, pick->be, pick->be_id, v6);
	pkt->mtu = mtu;
	return act;
}

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

/* Not an XDP action: a later fragment of a connection across families, its new addresses in the
 * scratch (kp_frag_xlate_to); the program's top translates it (kp_xlate_frag). */
#define KP_TX_XLATE_FRAG 0x104

/* A later fragment across families will come from src and go to dst (the scratch's ic): 1, or 0. */
static __always_inline int kp_frag_xlate_to(const __u8 *src, const __u8 *dst)
{
	struct kp_scratch *s = kp_scratch_get();

	if (!s)
		return 0;
	__builtin_memcpy(s->ic.client, src, KP_ADDR_LEN);
	__builtin_memcpy(s->ic.vip, dst, KP_ADDR_LEN);
	return 1;
}

/* The later fragment, translated (RFC 7915: a fragment header added towards IPv6, taken off towards
 * IPv4) and routed. A subprogram per family, called from the program's top. */
static __noinline int kp_xlate_frag_to6(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	int rc;

	if (!s)
		return XDP_DROP;
	pkt->l4_csum = NULL; /* a later fragment has no TCP/UDP header */
	rc = kp_xlate_4to6(pkt, s->ic.client, s->ic.vip);
	if (rc) {
		kp_stat_inc(rc == KP_XLATE_UNTOUCHED ? KP_STAT_DROP_XLATE : KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_XLATE);
	return kp_transmit(ctx, pkt, cfg, 1);
}

static __noinline int kp_xlate_frag_to4(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	__be32 s4, d4;
	int rc;

	if (!s || kp_addr_to_v4(s->ic.client, &s4) || kp_addr_to_v4(s->ic.vip, &d4))
		return XDP_DROP;
	pkt->l4_csum = NULL;
	rc = kp_xlate_6to4(pkt, s4, d4);
	if (rc) {
		kp_stat_inc(rc == KP_XLATE_UNTOUCHED ? KP_STAT_DROP_XLATE : KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
	kp_stat_inc(KP_STAT_XLATE);
	return kp_transmit(ctx, pkt, cfg, 0);
}

/* A fragment after the first: translated as its datagram's first fragment was (addresses only,
 * the ports and L4 checksum are in the first). One whose first fragment is unknown (lost, out of
 * order, or a new connection refused) is dropped if it is kpbpf's, passed if it is transit. */
static __noinline int kp_handle_fragment(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	__u64 now = kp_now();
	struct kp_flow_key key, rk;
	struct kp_backend *be;
	struct kp_vip_stats *vs;
	struct kp_ct *ct, *rv;
	struct kp_vip *vip;
	__be32 addr;

	if (kp_frag_flow_key(pkt, &key, now, v6)) {
		if (kp_frag_is_ours(&key))
			goto drop;
		kp_stat_inc(KP_STAT_PASS_FRAGMENT);
		return XDP_PASS;
	}
	vip = kp_vip_lookup(&key, cfg);
	if (vip) {
		ct = bpf_map_lookup_elem(&kp_ct, &key);
		if (!ct || kp_ct_expired(ct, cfg, now))
			goto drop;
		if (ct->flags & KP_CT_F_XLATE) {
			/* across families: from the connection's source (its masquerade address) to the backend */
			be = kp_ct_backend(ct, !v6, &addr);
			if (!be || !kp_frag_xlate_to(ct->vip_addr, be->addr))
				goto drop;
			kp_be_stats_add(ct->backend_id, pkt->len);
			vs = kp_vip_stats_get(vip->id);
			if (vs) {
				vs->existing_pkts += 1;
				vs->bytes += pkt->len;
			}
			kp_stat_inc(KP_STAT_FRAG_XLATE);
			return KP_TX_XLATE_FRAG;
		}
		be = kp_ct_backend(ct, v6, &addr);
		if (!be)
			goto drop;
		if (ct->last_seen_ns != now)
			ct->last_seen_ns = now;
		if (v6) {
			/* No header checksum; the L4 checksum is in the first fragment. */
			__builtin_memcpy(pkt->ip6->daddr.in6_u.u6_addr8, be->addr, KP_ADDR_LEN);
			if (ct->flags & KP_CT_F_MASQ)
				__builtin_memcpy(pkt->ip6->saddr.in6_u.u6_addr8, ct->vip_addr, KP_ADDR_LEN);
		} else {
			kp_nat_ipv4_addr(pkt->ip, &pkt->ip->daddr, addr);
			if ((ct->flags & KP_CT_F_MASQ) && !kp_addr_to_v4(ct->vip_addr, &addr))
				kp_nat_ipv4_addr(pkt->ip, &pkt->ip->saddr, addr);
		}
		kp_be_stats_add(ct->backend_id, pkt->len);
		vs = kp_vip_stats_get(vip->id);
		if (vs) {
			vs->existing_pkts += 1;
			vs->bytes += pkt->len;
		}
		kp_stat_inc(KP_STAT_FRAG_XLATE);
		return kp_transmit(ctx, pkt, cfg, v6);
	}
	kp_ct_reply_key(&rk, &key);
	rv = bpf_map_lookup_elem(&kp_ct, &rk);
	if (!rv) {
		kp_stat_inc(KP_STAT_PASS_FRAGMENT);
		return XDP_PASS;
	}
	ct = kp_ct_owner(&rk, rv, cfg, now);
	if (!ct)
		goto drop;
	if (rv->flags & KP_CT_F_XLATE) {
		/* back to the client's family, from the VIP to the client's own address */
		if (!kp_frag_xlate_to(rv->vip_addr, rv->peer.client_addr))
			goto drop;
		vs = kp_vip_stats_get(rv->vip_id);
		if (vs) {
			vs->reply_pkts += 1;
			vs->reply_bytes += pkt->len;
		}
		kp_stat_inc(KP_STAT_FRAG_XLATE);
		return KP_TX_XLATE_FRAG;
	}
	if (kp_addr_is_v4(rv->vip_addr) == !!v6)
		goto drop;
	if (ct->last_seen_ns != now)
		ct->last_seen_ns = now;
	if (v6) {
		__builtin_memcpy(pkt->ip6->saddr.in6_u.u6_addr8, rv->vip_addr, KP_ADDR_LEN);
		if (rv->flags & KP_CT_F_MASQ)
			__builtin_memcpy(pkt->ip6->daddr.in6_u.u6_addr8, rv->peer.client_addr, KP_ADDR_LEN);
	} else {
		kp_addr_to_v4(rv->vip_addr, &addr);
		kp_nat_ipv4_addr(pkt->ip, &pkt->ip->saddr, addr);
		if ((rv->flags & KP_CT_F_MASQ) && !kp_addr_to_v4(rv->peer.client_addr, &addr))
			kp_nat_ipv4_addr(pkt->ip, &pkt->ip->daddr, addr);
	}
	vs = kp_vip_stats_get(rv->vip_id);
	if (vs) {
		vs->reply_pkts += 1;
		vs->reply_bytes += pkt->len;
	}
	kp_stat_inc(KP_STAT_FRAG_XLATE);
	return kp_transmit(ctx, pkt, cfg, v6);
drop:
	kp_stat_inc(KP_STAT_DROP_FRAG);
	return XDP_DROP;
}

/* A TCP/UDP header that does not parse: dropped when kpbpf would rewrite the packet (a VIP's or a
 * reply's), passed untouched otherwise, since a router forwards what it does not understand. */
static __noinline int kp_handle_malformed_l4(struct kp_pkt *pkt, const struct kp_config *cfg, const int v6)
{
	struct kp_flow_key key;

	if (pkt->ports) {
		kp_flow_key_of(&key, pkt, v6);
		if (kp_vip_lookup(&key, cfg)) {
			kp_stat_inc(KP_STAT_DROP_MALFORMED);
			return XDP_DROP;
		}
		key.dir = KP_DIR_REPLY;
		if (bpf_map_lookup_elem(&kp_ct, &key)) {
			kp_stat_inc(KP_STAT_DROP_MALFORMED);
			return XDP_DROP;
		}
	}
	kp_stat_inc(KP_STAT_PASS_MALFORMED);
	return XDP_PASS;
}

/* A new connection to a VIP with source ranges (loadBalancerSourceRanges): is its source in one?
 * A subprogram: only VIPs that have ranges, and only for new connections, as kube-proxy's filter
 * sees only a connection's first packet. */
static __noinline int kp_src_allowed(__u32 vip_id, const struct kp_flow_key *key)
{
	struct kp_scratch *s = kp_scratch_get();

	if (!s)
		return 0;
	s->sk.prefixlen = 32 + 8 * KP_ADDR_LEN;
	s->sk.vip_id = vip_id;
	__builtin_memcpy(s->sk.addr, key->saddr, KP_ADDR_LEN);
	return bpf_map_lookup_elem(&kp_src_ranges, &s->sk) != NULL;
}

/* kp_handle_reply's verdict, with the answer it leaves to the caller. */
static __always_inline int kp_reply_done(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg, int act, const int v6)
{
	if (act == KP_TX_FRAG_NEEDED)
		return kp_too_big(ctx, pkt, cfg, KP_DIR_REPLY, v6);
	if (act == KP_TX_XLATE_TOO_BIG)
		return v6 ? kp_xlate_too_big_to6(ctx, pkt, cfg) : kp_xlate_too_big_to4(ctx, pkt, cfg);
	return act;
}

/* Linux's default ephemeral range (ip_local_port_range) starts here, and so do remapped ports;
 * Kubernetes' node ports end below it. */
#define KP_EPHEMERAL_MIN 32768

/* A client's port (ephemeral), or one masquerade gives out: look for a reply entry first. kp_masq is
 * a one-entry array, whose lookup the verifier inlines. */
static __always_inline int kp_port_reply_first(__be16 port)
{
	__u32 zero = 0, p = bpf_ntohs(port);
	struct kp_masq *m;

	if (p >= KP_EPHEMERAL_MIN)
		return 1;
	m = bpf_map_lookup_elem(&kp_masq, &zero);
	if (!m || !m->port_min)
		return p >= KP_MASQ_PORT_MIN && p <= KP_MASQ_PORT_MAX;
	return p >= m->port_min && p <= m->port_max;
}

/* Steps 2-7 for a parsed TCP/UDP packet of either family (v6): its connection, VIP or reply. */
static __always_inline int kp_handle_l4(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
					struct kp_scratch *s, const int v6)
{
	struct kp_ct_pick pick = {};
	struct kp_vip *vip;
	struct kp_ct *ct, *rv;
	__u32 vip_id = 0;
	int reply_looked_up = 0;
	int act;

	/* The tuple lives in the per-CPU scratch: the stack is kept for the call chains below. */
	kp_flow_key_of(&s->key, pkt, v6);
	pkt->now = kp_now();
	if (pkt->frag_first)
		kp_frag_record(pkt, &s->key, pkt->now, v6);
	/* A packet of a known connection needs neither the VIP nor a pick (a record of a VIP that was
	 * deleted has lost its backend slots, so it is not taken for one). A destination port in the
	 * ephemeral range is likely a client's: such a packet looks for its reply entry first, any other
	 * for its forward record first, so most packets of a connection make one lookup. */
	if (kp_port_reply_first(pkt->ports[1])) {
		kp_ct_reply_key(&s->rk, &s->key);
		rv = bpf_map_lookup_elem(&kp_ct, &s->rk);
		if (rv)
			return kp_reply_done(ctx, pkt, cfg, kp_handle_reply(ctx, pkt, s, cfg, rv, v6), v6);
		reply_looked_up = 1;
	}
	pick.now = pkt->now;
	pick.kind = -1;
	pick.v6 = v6;
	ct = bpf_map_lookup_elem(&kp_ct, &s->key);
	if (ct) {
		pick.v6 = v6 ^ !!(ct->flags & KP_CT_F_XLATE); /* the backend's family */
		pick.kind = kp_ct_existing(ct, &s->key, pkt, cfg, &pick);
		vip_id = ct->vip_id;
	}
	if (pick.kind < 0) {
		vip = kp_vip_lookup(&s->key, cfg);
		if (!vip) {
			rv = NULL;
			if (!reply_looked_up) {
				kp_ct_reply_key(&s->rk, &s->key);
				rv = bpf_map_lookup_elem(&kp_ct, &s->rk);
			}
			if (!rv)
				return kp_handle_no_match(pkt, &s->key, cfg);
			return kp_reply_done(ctx, pkt, cfg, kp_handle_reply(ctx, pkt, s, cfg, rv, v6), v6);
		}
		vip_id = vip->id;
		if ((vip->flags & KP_VIP_F_SRC_RANGES) && !kp_src_allowed(vip_id, &s->key)) {
			kp_stat_inc(KP_STAT_DROP_SRC_RANGE);
			return XDP_DROP;
		}
		pick.v6 = v6 ^ !!(vip->flags & KP_VIP_F_XLATE);
		pick.proto = pkt->proto;
		pick.tcp_flags = pkt->tcp_flags;
		pick.kind = kp_ct_new(&s->key, vip, cfg, &pick);
		pick.be = pick.kind == KP_CT_NO_SERVER ? NULL : kp_backend_of(pick.be_id, pick.v6, &pick.be_addr);
	}
	act = kp_vip_forward(ctx, pkt, vip_id, cfg, &pick, v6);
	if (act == KP_TX_REJECT)
		return kp_reject(ctx, pkt, cfg, v6);
	if (act == KP_TX_FRAG_NEEDED)
		return kp_too_big(ctx, pkt, cfg, KP_DIR_ORIG, v6);
	if (act == KP_TX_XLATE_TOO_BIG)
		return v6 ? kp_xlate_too_big_to6(ctx, pkt, cfg) : kp_xlate_too_big_to4(ctx, pkt, cfg);
	return act;
}

/* A parsed packet of either family to its handler. */
static __always_inline int kp_dispatch(struct xdp_md *ctx, struct kp_pkt *pkt, int rc, const int v6)
{
	struct kp_scratch *s;
	struct kp_config *cfg;
	__u32 zero = 0;

	if (rc != KP_PARSE_OK && rc != KP_PARSE_L4_MALFORMED && rc != KP_PARSE_ICMP && rc != KP_PARSE_FRAGMENT)
		return kp_unhandled(rc);
	cfg = bpf_map_lookup_elem(&kp_config, &zero);
	s = kp_scratch_get();
	if (!cfg || !s)
		return XDP_PASS; /* one-entry arrays always have key 0 */
	if (rc == KP_PARSE_FRAGMENT) {
		rc = kp_handle_fragment(ctx, pkt, cfg, v6);
		if (rc != KP_TX_XLATE_FRAG)
			return rc;
		return v6 ? kp_xlate_frag_to4(ctx, pkt, cfg) : kp_xlate_frag_to6(ctx, pkt, cfg);
	}
	if (rc == KP_PARSE_L4_MALFORMED)
		return kp_handle_malformed_l4(pkt, cfg, v6);
	if (rc == KP_PARSE_ICMP) {
		rc = kp_handle_icmp(ctx, pkt, cfg, v6);
		if (rc != KP_TX_ICMP_CROSS)
			return rc;
		return kp_icmp_cross(ctx, pkt, cfg, v6);
	}
	return kp_handle_l4(ctx, pkt, cfg, s, v6);
}

/* The IPv6 program, reached from kp_xdp by a tail call (kp_progs[KP_PROG_IPV6]): a fresh stack, and
 * the IPv4 path keeps its instructions. Not attached by itself. */
SEC("xdp")
int kp_xdp6(struct xdp_md *ctx)
{
	struct kp_pkt pkt;
	int rc;

	rc = kp_parse6(ctx, &pkt);
	return kp_dispatch(ctx, &pkt, rc, 1);
}

SEC("xdp")
int kp_xdp(struct xdp_md *ctx)
{
	struct kp_pkt pkt;
	int rc;

	rc = kp_parse(ctx, &pkt);
	if (rc == KP_PARSE_IPV6) {
		bpf_tail_call(ctx, &kp_progs, KP_PROG_IPV6);
		rc = KP_PARSE_NOT_IP; /* no IPv6 program loaded: passed untouched */
	}
	return kp_dispatch(ctx, &pkt, rc, 0);
}

char LICENSE[] SEC("license") = "GPL";
