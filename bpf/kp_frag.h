/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_frag.h: IPv4 and IPv6 fragments: the first one carries the ports and is handled as a packet; its
 * ports are kept so the later ones follow it to the same backend, or back to the same VIP. */
#ifndef KP_FRAG_H
#define KP_FRAG_H

#include "kp_ct.h"

/* The datagram's identification: IPv4's 16 bits, or the IPv6 fragment header's 32. */
static __always_inline __be32 kp_frag_id(const struct kp_pkt *pkt, const int v6)
{
	return v6 ? pkt->frag_id : (__be32)pkt->ip->id;
}

static __always_inline void kp_frag_key_of(struct kp_frag_key *fk, const struct kp_flow_key *key, __be32 id)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	__builtin_memcpy(fk->saddr, key->saddr, KP_ADDR_LEN);
	__builtin_memcpy(fk->daddr, key->daddr, KP_ADDR_LEN);
	fk->id = id;
	fk->proto = key->proto;
}

/* A first fragment, before any rewrite: remember its ports under (src, dst, id, protocol). A
 * subprogram: rare, and its keys stay off the main frame. */
static __noinline void kp_frag_record(const struct kp_pkt *pkt, const struct kp_flow_key *key, __u64 now, const int v6)
{
	struct kp_frag_key fk;
	struct kp_frag f = {};

	kp_frag_key_of(&fk, key, kp_frag_id(pkt, v6));
	f.sport = key->sport;
	f.dport = key->dport;
	f.seen_ns = now;
	bpf_map_update_elem(&kp_frags, &fk, &f, BPF_ANY);
}

/* The flow key of a later fragment, from its first fragment's ports; -1 if that is unknown. */
static __always_inline int kp_frag_flow_key(const struct kp_pkt *pkt, struct kp_flow_key *key, __u64 now, const int v6)
{
	struct kp_frag_key fk = {};
	struct kp_frag *f;

	__builtin_memset(key, 0, sizeof(*key));
	if (v6) {
		__builtin_memcpy(key->saddr, pkt->ip6->saddr.in6_u.u6_addr8, KP_ADDR_LEN);
		__builtin_memcpy(key->daddr, pkt->ip6->daddr.in6_u.u6_addr8, KP_ADDR_LEN);
		key->proto = pkt->proto; /* the fragment header's next header */
	} else {
		kp_addr_from_v4(key->saddr, pkt->ip->saddr);
		kp_addr_from_v4(key->daddr, pkt->ip->daddr);
		key->proto = pkt->ip->protocol;
	}
	kp_frag_key_of(&fk, key, kp_frag_id(pkt, v6));
	f = bpf_map_lookup_elem(&kp_frags, &fk);
	if (!f || (now > f->seen_ns && now - f->seen_ns > KP_FRAG_TIMEOUT_S * KP_NS_PER_S))
		return -1;
	key->sport = f->sport;
	key->dport = f->dport;
	return 0;
}

/* An unmatched later fragment addressed to a VIP or sent by a backend: kpbpf's, but untranslatable. */
static __always_inline int kp_frag_is_ours(const struct kp_flow_key *key)
{
	__u32 *to = bpf_map_lookup_elem(&kp_addrs, key->daddr);
	__u32 *from = bpf_map_lookup_elem(&kp_addrs, key->saddr);

	return (to && (*to & KP_ADDR_F_VIP)) || (from && (*from & KP_ADDR_F_BACKEND));
}

#endif /* KP_FRAG_H */
