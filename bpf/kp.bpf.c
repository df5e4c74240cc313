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
#include "kp_tx.h"
#include "kp_icmp_path.h"
#include "kp_frag_path.h"

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
