// SPDX-License-Identifier: GPL-2.0-only
/* kp.bpf.c: kube-proxy data plane as XDP: VIP DNAT with Maglev + sticky flows, reply SNAT.
 * The steps follow docs/DESIGN.md "Per packet". */
#include "kp_shared.h"
#include "kp_parse.h"
#include "kp_csum.h"
#include "kp_maps.h"
#include "kp_stats.h"
#include "kp_hash.h"
#include "kp_nat.h"
#include "kp_lb.h"
#include "kp_fib.h"

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
	case KP_PARSE_FRAGMENT:
		kp_stat_inc(KP_STAT_PASS_FRAGMENT);
		return XDP_PASS;
	default:
		kp_stat_inc(KP_STAT_DROP_MALFORMED);
		return XDP_DROP;
	}
}

/* Step 7: after a rewrite, redirect when allowed and routable, else hand to the kernel. A
 * partial checksum is finished before a redirect; one that cannot be finished goes to the kernel. */
static __always_inline int kp_transmit(struct xdp_md *ctx, struct kp_pkt *pkt, const struct kp_config *cfg,
				       int have_cfg)
{
	int act = XDP_PASS;

	if (have_cfg && !(cfg->flags & KP_CONF_F_NO_FIB) && !pkt->vlan &&
	    pkt->l4_csum_state != KP_L4_CSUM_UNREAD)
		act = kp_fib_redirect(ctx, pkt);
	if (act == XDP_REDIRECT)
		kp_l4_csum_finish(pkt);
	kp_stat_inc(act == XDP_REDIRECT ? KP_STAT_TX_REDIRECT : KP_STAT_TX_PASS);
	return act;
}

/* Step 3: a reply from a backend of a NATed flow gets its source set back to the VIP. */
static __always_inline int kp_handle_reply(struct xdp_md *ctx, struct kp_pkt *pkt,
					   const struct kp_flow_key *key, const struct kp_config *cfg,
					   int have_cfg, __u64 now)
{
	struct kp_vip_stats *vs;
	struct kp_rev_nat *rev;
	__be32 vip_addr;

	rev = bpf_map_lookup_elem(&kp_rev_nat, key);
	if (!rev || kp_expired(now, rev->last_seen_ns, cfg->flow_timeout_ns) ||
	    kp_addr_to_v4(rev->vip_addr, &vip_addr)) {
		kp_stat_inc(KP_STAT_PASS_NO_MATCH);
		return XDP_PASS;
	}
	/* Shared entry: write only when the coarse clock moved. */
	if (rev->last_seen_ns != now)
		rev->last_seen_ns = now;
	kp_snat_ipv4(pkt, vip_addr, rev->vip_port);
	kp_stat_inc(KP_STAT_SNAT);
	vs = kp_vip_stats_get(rev->vip_id);
	if (vs) {
		vs->reply_pkts += 1;
		vs->reply_bytes += pkt->len;
	}
	return kp_transmit(ctx, pkt, cfg, have_cfg);
}

/* Steps 4-6: pick the backend of a VIP packet and DNAT to it. */
static __always_inline int kp_handle_vip(struct xdp_md *ctx, struct kp_pkt *pkt,
					 const struct kp_flow_key *key, const struct kp_vip *vip,
					 const struct kp_config *cfg, int have_cfg, __u64 now)
{
	struct kp_backend *be = NULL;
	struct kp_vip_stats *vs;
	__be32 be_addr = 0;
	__u32 be_id = 0;
	int kind;

	kind = kp_flow_select(key, vip, cfg, now, &be, &be_id, &be_addr);
	vs = kp_vip_stats_get(vip->id);
	if (vs) {
		vs->bytes += pkt->len;
		if (kind == KP_FLOW_EXISTING)
			vs->existing_pkts += 1;
		else if (kind == KP_FLOW_FIRST)
			vs->first_pkts += 1;
		else if (kind == KP_FLOW_UNTRACKED)
			vs->untracked_pkts += 1;
		else
			vs->no_server_pkts += 1;
	}
	if (kind == KP_FLOW_NO_SERVER || !be) {
		kp_stat_inc(KP_STAT_DROP_NO_BACKEND);
		return XDP_DROP;
	}
	kp_dnat_ipv4(pkt, be_addr, be->port);
	kp_stat_inc(KP_STAT_DNAT);
	kp_be_stats_add(be_id, pkt->len);
	return kp_transmit(ctx, pkt, cfg, have_cfg);
}

SEC("xdp")
int kp_xdp(struct xdp_md *ctx)
{
	struct kp_config cfg = {};
	struct kp_flow_key key;
	struct kp_pkt pkt;
	struct kp_config *c;
	struct kp_vip *vip;
	__u32 zero = 0;
	int have_cfg;
	__u64 now;
	int rc;

	rc = kp_parse(ctx, &pkt);
	if (rc != KP_PARSE_OK)
		return kp_unhandled(rc);
	/* A missing config reads as zero: no prefixes, flows never expire, no FIB. */
	c = bpf_map_lookup_elem(&kp_config, &zero);
	have_cfg = c != NULL;
	if (c)
		cfg = *c;
	now = bpf_ktime_get_coarse_ns();
	kp_flow_key_ipv4(&key, &pkt);
	vip = kp_vip_lookup(&key, &cfg);
	if (!vip)
		return kp_handle_reply(ctx, &pkt, &key, &cfg, have_cfg, now);
	return kp_handle_vip(ctx, &pkt, &key, vip, &cfg, have_cfg, now);
}

char LICENSE[] SEC("license") = "GPL";
