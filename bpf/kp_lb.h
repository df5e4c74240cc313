/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_lb.h: VIP lookup and the Maglev backend pick of a new connection. */
#ifndef KP_LB_H
#define KP_LB_H

#include "kp_maps.h"
#include "kp_hash.h"
#include "kp_maglev.h"
#include "kp_nat.h"

#define KP_VIP_PFX_FULL_LEN (32 + 8 * KP_ADDR_LEN) /* proto/pad/port + 128 address bits */

/* Packet tuple of a TCP/UDP packet as a flow key; pad stays zero for hashing. */
static __always_inline void kp_flow_key_of(struct kp_flow_key *key, const struct kp_pkt *pkt, const int v6)
{
	__builtin_memset(key, 0, sizeof(*key));
	if (v6) {
		__builtin_memcpy(key->saddr, pkt->ip6->saddr.in6_u.u6_addr8, KP_ADDR_LEN);
		__builtin_memcpy(key->daddr, pkt->ip6->daddr.in6_u.u6_addr8, KP_ADDR_LEN);
	} else {
		kp_addr_from_v4(key->saddr, pkt->ip->saddr);
		kp_addr_from_v4(key->daddr, pkt->ip->daddr);
	}
	key->sport = pkt->ports[0];
	key->dport = pkt->ports[1];
	key->proto = pkt->proto;
}

/* Exact (daddr, dport, proto) first, then the longest prefix if any prefix exists. The lookup keys
 * are built in the per-CPU scratch: this runs inline in kp_xdp, whose frame every call chain shares. */
static __always_inline struct kp_vip *kp_vip_lookup(const struct kp_flow_key *key,
						    const struct kp_config *cfg)
{
	struct kp_scratch *s = kp_scratch_get();
	struct kp_vip_key *vk;
	struct kp_vip_pfx_key *pk;
	struct kp_vip *vip;

	if (!s)
		return NULL;
	vk = &s->vk;
	__builtin_memcpy(vk->addr, key->daddr, KP_ADDR_LEN);
	vk->port = key->dport;
	vk->proto = key->proto;
	vk->pad = 0;
	vip = bpf_map_lookup_elem(&kp_vips, vk);
	if (vip || !cfg->n_vip_prefixes)
		return vip;
	pk = &s->pk;
	pk->prefixlen = KP_VIP_PFX_FULL_LEN;
	pk->proto = key->proto;
	pk->pad = 0;
	pk->port = key->dport;
	__builtin_memcpy(pk->addr, key->daddr, KP_ADDR_LEN);
	return bpf_map_lookup_elem(&kp_vip_pfx, pk);
}

/* kp_vip_lookup with its keys on the stack, for the socket hooks, which XDP may interrupt on the
 * same CPU (the scratch is XDP's). */
static __always_inline struct kp_vip *kp_vip_lookup_stack(const struct kp_flow_key *key, const struct kp_config *cfg)
{
	struct kp_vip_key vk = {};
	struct kp_vip_pfx_key pk = {};
	struct kp_vip *vip;

	__builtin_memcpy(vk.addr, key->daddr, KP_ADDR_LEN);
	vk.port = key->dport;
	vk.proto = key->proto;
	vip = bpf_map_lookup_elem(&kp_vips, &vk);
	if (vip || !cfg->n_vip_prefixes)
		return vip;
	pk.prefixlen = KP_VIP_PFX_FULL_LEN;
	pk.proto = key->proto;
	pk.port = key->dport;
	__builtin_memcpy(pk.addr, key->daddr, KP_ADDR_LEN);
	return bpf_map_lookup_elem(&kp_vip_pfx, &pk);
}

/* A backend a packet of its family can be sent to: the slot is live and its address is v4-mapped
 * (IPv4, into *addr) or not (IPv6, v6 set). */
static __always_inline struct kp_backend *kp_backend_of(__u32 id, int v6, __be32 *addr)
{
	struct kp_backend *be;

	if (id == KP_BACKEND_NONE)
		return NULL;
	be = bpf_map_lookup_elem(&kp_backends, &id);
	if (!be || be->state == KP_BACKEND_FREE || !kp_addr_to_v4(be->addr, addr) == !!v6)
		return NULL;
	return be;
}

static __always_inline struct kp_backend *kp_backend_v4(__u32 id, __be32 *addr)
{
	return kp_backend_of(id, 0, addr);
}

/* Maglev: a new connection's backend from the VIP's table; only ACTIVE backends are picked. */
static __always_inline struct kp_backend *kp_maglev_pick(const struct kp_flow_key *key,
							 const struct kp_vip *vip, __u32 seed,
							 __u32 *id, __be32 *addr, int v6)
{
	struct kp_backend *be;

	*id = kp_maglev_backend_id(vip->id + (vip->flags & KP_VIP_F_LOCAL ? KP_MAGLEV_LOCAL : 0), kp_flow_hash(key, seed));
	if (*id == KP_BACKEND_NONE)
		return NULL;
	be = kp_backend_of(*id, v6, addr);
	if (!be || be->state != KP_BACKEND_ACTIVE)
		return NULL;
	return be;
}

#endif /* KP_LB_H */
