/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_fib.h: route a rewritten IPv4 packet with bpf_fib_lookup and redirect it via kp_tx_ports.
 * The includer declares a DEVMAP or DEVMAP_HASH named kp_tx_ports first. */
#ifndef KP_FIB_H
#define KP_FIB_H

#include "kp_parse.h"
#include "kp_csum.h"

#define KP_AF_INET 2
/* Not an XDP action: the packet is larger than the route's MTU (*mtu); the caller decides. */
#define KP_TX_FRAG_NEEDED 0x100

/* XDP_REDIRECT with TTL and MACs rewritten, XDP_PASS with the packet left as it is, or
 * KP_TX_FRAG_NEEDED with the packet left as it is and *mtu set. */
static __always_inline int kp_fib_redirect(struct xdp_md *ctx, struct kp_pkt *pkt, __u32 *mtu)
{
	int rc;

	struct bpf_fib_lookup fib = {};
	struct iphdr *ip = pkt->ip;
	__be16 old_word, new_word;
	/* The kernel sends ICMP time exceeded; we do not. */
	if (ip->ttl <= 1)
		return XDP_PASS;
	fib.family = KP_AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		*mtu = fib.mtu_result;
		return KP_TX_FRAG_NEEDED;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	/* Only vetted interfaces; decide before touching the packet. */
	if (bpf_redirect_map(&kp_tx_ports, fib.ifindex, XDP_PASS) != XDP_REDIRECT)
		return XDP_PASS;
	/* TTL shares a 16-bit checksum word with the protocol. */
	__builtin_memcpy(&old_word, &ip->ttl, sizeof(old_word));
	ip->ttl--;
	__builtin_memcpy(&new_word, &ip->ttl, sizeof(new_word));
	ip->check = kp_csum_replace2(ip->check, old_word, new_word);
	__builtin_memcpy(pkt->eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(pkt->eth->h_source, fib.smac, ETH_ALEN);
	return XDP_REDIRECT;
}

#endif /* KP_FIB_H */
