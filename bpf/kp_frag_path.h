/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_frag_path.h: fragments after the first: found by the first fragment's ports, NATed, or
 * translated across families (kp.bpf.c step 9) */
#ifndef KP_FRAG_PATH_H
#define KP_FRAG_PATH_H

#include "kp_maps.h"

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

#endif /* KP_FRAG_PATH_H */
