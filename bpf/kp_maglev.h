/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A slot of a VIP's Maglev table in the shared store (kp_maglev_store, kp_maglev_ref). */
#ifndef KP_MAGLEV_H
#define KP_MAGLEV_H

#include "kp_maps.h"

/* The backend id in slot hash % length of a Maglev table (0: none). The length and the table's place
 * in the store come from one 8-byte load, so they always belong to the same published table. A call,
 * not inlined: its registers would otherwise spill into kp_ct_new's frame, past kp_xdp6's 512 bytes. */
static __noinline __u32 kp_maglev_backend_id(__u32 key, __u32 hash)
{
	__u64 *ref, r;
	void *store;
	__u32 word;
	__u32 *c;

	ref = bpf_map_lookup_elem(&kp_maglev_ref, &key);
	if (!ref)
		return 0;
	r = *(volatile __u64 *)ref;
	if (!KP_MAGLEV_REF_LEN(r))
		return 0;
	key = 0;
	store = bpf_map_lookup_elem(&kp_maglev_store, &key);
	if (!store)
		return 0;
	word = KP_MAGLEV_REF_FIRST(r) + hash % KP_MAGLEV_REF_LEN(r);
	key = word / KP_MAGLEV_CHUNK;
	c = bpf_map_lookup_elem(store, &key);
	if (!c)
		return 0;
	return c[word & (KP_MAGLEV_CHUNK - 1)];
}

#endif /* KP_MAGLEV_H */
