/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_maps.h: every map of kp.bpf.c; names and sizes as in docs/DESIGN.md. */
#ifndef KP_MAPS_H
#define KP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "kp_shared.h"
#include "kp_clock.h"

/* VIPs matched exactly on (address, port, protocol). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KP_MAX_VIPS);
	__type(key, struct kp_vip_key);
	__type(value, struct kp_vip);
} kp_vips SEC(".maps");

/* Prefix VIPs, longest match; consulted only when kp_config.n_vip_prefixes > 0. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KP_MAX_VIP_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kp_vip_pfx_key);
	__type(value, struct kp_vip);
} kp_vip_pfx SEC(".maps");

/* (vip id, source prefix) -> 1: the sources a VIP with KP_VIP_F_SRC_RANGES accepts new connections from. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KP_MAX_SRC_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kp_src_key);
	__type(value, __u32);
} kp_src_ranges SEC(".maps");

/* Programs kp_xdp tail-calls: KP_PROG_* -> program, filled by the loader after each load. Pinned, as
 * a program array loses its entries when no process or pin holds it. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, KP_MAX_PROGS);
	__type(key, __u32);
	__type(value, __u32);
} kp_progs SEC(".maps");

/* The Maglev tables of every VIP, in one shared store of backend ids (Katran keeps its rings in one
 * array too): a table is a run of words, published by one 8-byte store of its kp_maglev_ref entry,
 * so a table changes all at once and no packet reads half of a new one. The store's words are
 * grouped in chunks because an array spends round_up(value_size, 8) per entry. */
struct kp_maglev_slots {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32[KP_MAGLEV_CHUNK]);
};

/* [0] -> the store. An outer map so that the control plane grows the store (a larger copy, swapped
 * in) without reloading the program. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct kp_maglev_slots);
} kp_maglev_store SEC(".maps");

/* vip id (+ KP_MAX_VIPS for the table of local backends only) -> KP_MAGLEV_REF(first word, length);
 * 0 = no table. Mappable: the control plane publishes a table with one atomic store. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * KP_MAX_VIPS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} kp_maglev_ref SEC(".maps");

/* backend id -> backend. Mappable: the control plane reads and writes the slots in place. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MAX_BACKENDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kp_backend);
} kp_backends SEC(".maps");

/* Connections: a forward and a reply entry each, shared by all CPUs so either direction finds
 * and updates the one record on any CPU; the loader sets the size (2 x buckets). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * KP_DEFAULT_BUCKETS);
	__type(key, struct kp_flow_key);
	__type(value, struct kp_ct);
} kp_ct SEC(".maps");

/* First fragments' ports, so a datagram's later fragments follow it (Cilium tracks them the same way). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KP_MAX_FRAGS);
	__type(key, struct kp_frag_key);
	__type(value, struct kp_frag);
} kp_frags SEC(".maps");

/* VIP and backend addresses (-> KP_ADDR_F_*), to tell an unmatched fragment of kpbpf's from transit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KP_MAX_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u8[KP_ADDR_LEN]);
	__type(value, __u32);
} kp_addrs SEC(".maps");

/* Destination -> next hop (egress, MACs, MTU), so a packet needs no FIB lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KP_MAX_NEXTHOPS);
	__type(key, __u8[KP_ADDR_LEN]);
	__type(value, struct kp_nexthop);
} kp_nexthop SEC(".maps");

/* Value of kp_be_hops (index: backend id): the next hop toward a backend, kept per backend so a
 * forward packet finds it in an array, with no lookup call. Written only by the data path (not shared with the control plane). */
struct kp_be_hop {
	struct kp_hop hop;
	__u32 hop_gen;        /* kp_config.hop_gen it was copied under */
	__u32 be_gen;         /* kp_backend.gen of the slot then: a re-used slot has another address */
	__u32 pad;
	__u64 checked_ns;     /* the checked_ns of the kp_nexthop entry it was copied from; 0 = never */
};
_Static_assert(sizeof(struct kp_be_hop) == 40, "kp_be_hop size");

/* backend id -> next hop toward it (kp_fib_redirect_be). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct kp_be_hop);
} kp_be_hops SEC(".maps");

/* An ICMP error about a connection across families, being rebuilt for the client (kp_icmp_cross.h). */
struct kp_icmp_cross {
	__u8 client[KP_ADDR_LEN]; /* the error's destination and the quote's source: the client, or for an
	                             error about a reply, the backend */
	__u8 vip[KP_ADDR_LEN];    /* its source and the quote's destination: the VIP, or the masquerade address */
	__u8 l4[8];               /* the quoted TCP/UDP header's first 8 bytes, in the receiver's view */
	__be16 qsport, qdport;    /* the quote's ports in that view */
	__u8 macs[12];            /* the frame's destination and source MACs */
	__be32 rest;              /* the word after the ICMP checksum: unused, or the MTU */
	__u16 in_len;             /* the quoted packet's L4 length (header and data) */
	__u8 type, code, proto, ttl, tos;
	__u8 pad;
};

/* Per-CPU room for the larger temporaries of new connections and next-hop refreshes, which
 * would not fit the 512-byte BPF stack beside the packet's own state. XDP does not nest on a CPU. */
struct kp_scratch {
	struct kp_flow_key key;  /* the packet's tuple */
	struct kp_flow_key rk;   /* a reply tuple being claimed or looked up */
	struct kp_flow_key fk;   /* the forward tuple a reply entry names */
	struct kp_ct rv;         /* its reply entry */
	struct kp_ct nc;         /* a new forward record */
	struct kp_nexthop nh;    /* a next hop being looked up */
	struct kp_vip_key vk;    /* the packet's VIP, exact */
	struct kp_vip_pfx_key pk; /* and as a prefix key */
	struct kp_src_key sk;    /* the packet's source, for a VIP's source ranges */
	__u8 masq[KP_ADDR_LEN];  /* a new connection's masquerade address */
	struct kp_affinity_key ak; /* a new connection's client, for session affinity */
	struct kp_affinity av;
	__u32 evict;             /* kp_ct_claim may take a tuple from an unreplied UDP flow */
	__u32 evicted;           /* it did (counted, then cleared, by kp_vip_forward) */
	__u32 masq_lo;           /* and the port range it takes a port from */
	__u32 masq_span;
	struct kp_icmp_cross ic; /* an ICMP error across families */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_scratch);
} kp_scratch SEC(".maps");

static __always_inline struct kp_scratch *kp_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&kp_scratch, &zero);
}

/* Session affinity: (VIP id, client address) -> the backend of its last new connection. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KP_MAX_AFFINITY);
	__type(key, struct kp_affinity_key);
	__type(value, struct kp_affinity);
} kp_affinity SEC(".maps");

/* vip id -> its session affinity timeout in seconds (read for VIPs flagged KP_VIP_F_AFFINITY). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} kp_vip_affinity SEC(".maps");

/* The node's own sockets' translations (kp_sock.h), an entry each way per (socket, VIP). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KP_MAX_SOCKS);
	__type(key, struct kp_sock_key);
	__type(value, struct kp_sock_nat);
} kp_sock SEC(".maps");

/* Control-plane settings (kp_shared.h), one entry at key 0; never read by the data path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_settings);
} kp_settings SEC(".maps");

/* Where masqueraded connections come from (kp_shared.h): the IPv4 address and the port range at
 * KP_MASQ_V4, the IPv6 address at KP_MASQ_V6; read by new masqueraded connections only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MASQ_ENTRIES);
	__type(key, __u32);
	__type(value, struct kp_masq);
} kp_masq SEC(".maps");

/* kp_layout[0]: the KP_LAYOUT_VERSION of the kpbpf that created the pins (written by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} kp_layout SEC(".maps");

/* Runtime knobs, one entry at key 0. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_config);
} kp_config SEC(".maps");

/* Per-VIP counters, a slice of KP_MAX_VIPS per CPU: CPU c counts vip id i at c * KP_MAX_VIPS + i.
 * One plain array rather than a PERCPU_ARRAY: the kernel makes it with one allocation (a per-CPU
 * array makes one per entry: 150 ms for the backends' 262k at every fresh load) and the control
 * plane reads and zeroes it through its mapping. The loader sets the size (slice x possible CPUs).
 * No two CPUs write one cache line: each has its own slice. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MAX_VIPS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kp_vip_stats);
} kp_vip_stats_v2 SEC(".maps");

/* Per-backend counters, a slice of KP_MAX_BACKENDS per CPU, as kp_vip_stats_v2. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KP_MAX_BACKENDS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kp_backend_stats);
} kp_be_stats_v2 SEC(".maps");

/* Global counters, indexed by enum kp_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} kp_stats SEC(".maps");

/* Interfaces we may redirect to (ifindex -> ifindex). */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, KP_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} kp_tx_ports SEC(".maps");

#endif /* KP_MAPS_H */
