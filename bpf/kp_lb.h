/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_lb.h: VIP lookup, flow table, Maglev backend pick and reverse NAT entries. */
#ifndef KP_LB_H
#define KP_LB_H

#include "kp_maps.h"
#include "kp_hash.h"
#include "kp_nat.h"

#define KP_VIP_PFX_FULL_LEN (32 + 8 * KP_ADDR_LEN) /* proto/pad/port + 128 address bits */
#define KP_REV_REFRESH_DIV 4 /* refresh kp_rev_nat every timeout / 4 */
#ifndef KP_MAX_CPUS
#define KP_MAX_CPUS 128 /* CPUs whose kp_flows slots are searched; lookups stop at nr_cpu_ids */
#endif

/* How a VIP packet's backend was found (selects the per-VIP counter). */
enum kp_flow_kind {
	KP_FLOW_EXISTING,
	KP_FLOW_FIRST,
	KP_FLOW_UNTRACKED,
	KP_FLOW_NO_SERVER,
};

/* Packet tuple of an IPv4 TCP/UDP packet as a flow key; pad stays zero for hashing. */
static __always_inline void kp_flow_key_ipv4(struct kp_flow_key *key, const struct kp_pkt *pkt)
{
	__builtin_memset(key, 0, sizeof(*key));
	kp_addr_from_v4(key->saddr, pkt->ip->saddr);
	kp_addr_from_v4(key->daddr, pkt->ip->daddr);
	key->sport = pkt->ports[0];
	key->dport = pkt->ports[1];
	key->proto = pkt->proto;
}

/* Idle longer than timeout; a timeout of 0 means entries never expire. */
static __always_inline int kp_expired(__u64 now, __u64 then, __u64 timeout)
{
	return timeout && now > then && now - then > timeout;
}

/* Exact (daddr, dport, proto) first, then the longest prefix if any prefix exists. */
static __always_inline struct kp_vip *kp_vip_lookup(const struct kp_flow_key *key,
						    const struct kp_config *cfg)
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

/* A backend an IPv4 packet can be sent to: the slot is live and the address is v4-mapped. */
static __always_inline struct kp_backend *kp_backend_v4(__u32 id, __be32 *addr)
{
	struct kp_backend *be;

	if (id == KP_BACKEND_NONE)
		return NULL;
	be = bpf_map_lookup_elem(&kp_backends, &id);
	if (!be || be->state == KP_BACKEND_FREE || kp_addr_to_v4(be->addr, addr))
		return NULL;
	return be;
}

/* The flow's pinned backend if it is still ACTIVE/DRAINING with the same gen and not idle. */
static __always_inline struct kp_backend *kp_flow_valid(struct kp_flow *f, __u64 now, __u64 timeout,
							__be32 *addr)
{
	struct kp_backend *be;

	if (kp_expired(now, f->last_seen_ns, timeout))
		return NULL;
	be = kp_backend_v4(f->backend_id, addr);
	if (!be || be->gen != f->backend_gen)
		return NULL;
	if (be->state != KP_BACKEND_ACTIVE && be->state != KP_BACKEND_DRAINING)
		return NULL;
	return be;
}

/* State of the search of other CPUs' kp_flows slots; scalars only, so bpf_loop's callback
 * is verified once instead of per iteration. */
struct kp_adopt_ctx {
	struct kp_flow_key key;
	struct kp_flow best; /* most recently seen valid slot so far */
	__u64 now;
	__u64 timeout;
	__u32 self;          /* this CPU: its slot is the stale one */
	__u32 found;
};

/* bpf_loop callback: returns 1 to stop (no such CPU), 0 to go on. */
static long kp_adopt_cpu(__u32 cpu, void *data)
{
	struct kp_adopt_ctx *c = data;
	struct kp_flow snap;
	struct kp_flow *p;
	__be32 addr;

	p = bpf_map_lookup_percpu_elem(&kp_flows, &c->key, cpu);
	if (!p)
		return 1; /* cpu >= nr_cpu_ids, or the element was evicted */
	if (cpu == c->self)
		return 0;
	snap = *p; /* its CPU may write it meanwhile: judge one copy */
	if (snap.backend_id == KP_BACKEND_NONE || (c->found && snap.last_seen_ns <= c->best.last_seen_ns))
		return 0;
	if (!kp_flow_valid(&snap, c->now, c->timeout, &addr))
		return 0;
	c->best = snap;
	c->found = 1;
	return 0;
}

/* The flow's packets moved to this CPU (RSS, NAPI) and its slot here is empty or stale: adopt
 * the most recently seen valid slot of another CPU into *local, so the flow keeps its backend. */
static __always_inline struct kp_backend *kp_flow_adopt(const struct kp_flow_key *key, struct kp_flow *local,
							__u64 now, __u64 timeout, __be32 *addr)
{
	struct kp_adopt_ctx c = {};
	struct kp_backend *be;

	c.key = *key;
	c.now = now;
	c.timeout = timeout;
	c.self = bpf_get_smp_processor_id();
	bpf_loop(KP_MAX_CPUS, kp_adopt_cpu, &c, 0);
	if (!c.found)
		return NULL;
	be = kp_flow_valid(&c.best, now, timeout, addr);
	if (be)
		*local = c.best;
	return be;
}

/* Maglev: slot = hash % table_len of this VIP's inner map; only ACTIVE backends are picked. */
static __always_inline struct kp_backend *kp_maglev_pick(const struct kp_flow_key *key,
							 const struct kp_vip *vip, __u32 seed,
							 __u32 *id, __be32 *addr)
{
	struct kp_backend *be;
	__u32 vip_id = vip->id;
	__u32 slot;
	__u32 *bid;
	void *table;

	if (!vip->table_len)
		return NULL;
	table = bpf_map_lookup_elem(&kp_maglev, &vip_id);
	if (!table)
		return NULL;
	slot = kp_flow_hash(key, seed) % vip->table_len;
	bid = bpf_map_lookup_elem(table, &slot);
	if (!bid)
		return NULL;
	*id = *bid;
	be = kp_backend_v4(*id, addr);
	if (!be || be->state != KP_BACKEND_ACTIVE)
		return NULL;
	return be;
}

/* Reply tuple (backend -> client) to the VIP the client addressed. */
static __always_inline void kp_rev_nat_write(const struct kp_flow_key *key, const struct kp_backend *be,
					     __u32 vip_id, __u64 now)
{
	struct kp_flow_key rk = {};
	struct kp_rev_nat rv = {};

	__builtin_memcpy(rk.saddr, be->addr, KP_ADDR_LEN);
	__builtin_memcpy(rk.daddr, key->saddr, KP_ADDR_LEN);
	rk.sport = be->port;
	rk.dport = key->sport;
	rk.proto = key->proto;
	__builtin_memcpy(rv.vip_addr, key->daddr, KP_ADDR_LEN);
	rv.vip_port = key->dport;
	rv.vip_id = vip_id;
	rv.last_seen_ns = now;
	bpf_map_update_elem(&kp_rev_nat, &rk, &rv, BPF_ANY);
}

/* Finds the backend of a VIP packet; returns a kp_flow_kind, *be is set unless NO_SERVER. */
static __always_inline int kp_flow_select(const struct kp_flow_key *key, const struct kp_vip *vip,
					  const struct kp_config *cfg, __u64 now,
					  struct kp_backend **bep, __u32 *be_id, __be32 *be_addr)
{
	__u64 timeout = cfg->flow_timeout_ns;
	struct kp_flow nf = {};
	struct kp_backend *be;
	struct kp_flow *f;

	f = bpf_map_lookup_elem(&kp_flows, key);
	if (f) {
		be = kp_flow_valid(f, now, timeout, be_addr);
		if (!be)
			be = kp_flow_adopt(key, f, now, timeout, be_addr);
		if (be) {
			f->last_seen_ns = now;
			if (timeout && now - f->rev_seen_ns > timeout / KP_REV_REFRESH_DIV) {
				kp_rev_nat_write(key, be, vip->id, now);
				f->rev_seen_ns = now;
			}
			*bep = be;
			*be_id = f->backend_id;
			return KP_FLOW_EXISTING;
		}
	}
	be = kp_maglev_pick(key, vip, cfg->hash_seed, be_id, be_addr);
	if (!be)
		return KP_FLOW_NO_SERVER;
	*bep = be;
	kp_rev_nat_write(key, be, vip->id, now);
	nf.backend_id = *be_id;
	nf.backend_gen = be->gen;
	nf.last_seen_ns = now;
	nf.rev_seen_ns = now;
	if (bpf_map_update_elem(&kp_flows, key, &nf, BPF_ANY))
		return KP_FLOW_UNTRACKED;
	return KP_FLOW_FIRST;
}

#endif /* KP_LB_H */
