/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_fib.h: route a rewritten IPv4 packet with a cached bpf_fib_lookup result and redirect it
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
/* Not an XDP action: the packet is larger than the route's MTU (*mtu); the caller decides. */
#define KP_TX_FRAG_NEEDED 0x100

/* A FIB lookup for the packet's destination into *nh; the BPF_FIB_LKUP_RET_* code. */
static __always_inline int kp_fib_resolve(struct xdp_md *ctx, const struct iphdr *ip, struct kp_nexthop *nh, __u32 *mtu)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.family = KP_AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	kp_stat_inc(KP_STAT_FIB_LOOKUP);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		*mtu = fib.mtu_result;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc;
	nh->ifindex = fib.ifindex;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	nh->mtu = fib.mtu_result;
	return rc;
}

/* XDP_REDIRECT with TTL and MACs rewritten, XDP_PASS with the packet left as it is, or
 * KP_TX_FRAG_NEEDED with the packet left as it is and *mtu set. The next hop of a destination
 * comes from kp_nexthop while it is younger than KP_NEXTHOP_TTL_MS, so most packets make no FIB
 * lookup; a route or neighbour change takes effect within that time. */
static __always_inline int kp_fib_redirect(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu)
{
	struct iphdr *ip = pkt->ip;
	struct kp_nexthop fresh = {};
	struct kp_nexthop *nh;
	__be16 old_word, new_word;
	__u8 daddr[KP_ADDR_LEN];
	__u64 now;
	int rc;

	/* The kernel sends ICMP time exceeded; we do not. */
	if (ip->ttl <= 1)
		return XDP_PASS;
	kp_fib_addr_key(daddr, ip->daddr);
	now = bpf_ktime_get_coarse_ns();
	nh = bpf_map_lookup_elem(&kp_nexthop, daddr);
	if (!nh || now - nh->checked_ns > KP_NEXTHOP_TTL_MS * 1000000ULL) {
		rc = kp_fib_resolve(ctx, ip, &fresh, mtu);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return KP_TX_FRAG_NEEDED;
		if (rc != BPF_FIB_LKUP_RET_SUCCESS)
			return XDP_PASS;
		/* Only vetted interfaces; decided before touching the packet. */
		fresh.redirect = bpf_redirect_map(&kp_tx_ports, fresh.ifindex, XDP_PASS) == XDP_REDIRECT;
		fresh.checked_ns = now;
		bpf_map_update_elem(&kp_nexthop, daddr, &fresh, BPF_ANY);
		nh = &fresh;
	} else if (bpf_ntohs(ip->tot_len) > nh->mtu) {
		*mtu = nh->mtu;
		return KP_TX_FRAG_NEEDED;
	}
	if (!nh->redirect || bpf_redirect_map(&kp_tx_ports, nh->ifindex, XDP_PASS) != XDP_REDIRECT)
		return XDP_PASS;
	/* TTL shares a 16-bit checksum word with the protocol. */
	__builtin_memcpy(&old_word, &ip->ttl, sizeof(old_word));
	ip->ttl--;
	__builtin_memcpy(&new_word, &ip->ttl, sizeof(new_word));
	ip->check = kp_csum_replace2(ip->check, old_word, new_word);
	__builtin_memcpy(pkt->eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_source, nh->smac, ETH_ALEN);
	return XDP_REDIRECT;
}

#endif /* KP_FIB_H */
