/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_stats.h: counters, each CPU its own; an id outside a map's range is simply not counted. */
#ifndef KP_STATS_H
#define KP_STATS_H

#include "kp_maps.h"

static __always_inline void kp_stat_inc(__u32 code)
{
	__u64 *c = bpf_map_lookup_elem(&kp_stats, &code);

	if (c)
		*c += 1;
}

/* This CPU's entry for id in an array sliced per CPU (kp_maps.h); NULL when id is outside a slice
 * (it would count in the next CPU's) or the CPU outside the array. */
static __always_inline void *kp_cpu_slot(void *map, __u32 id, __u32 slice)
{
	__u32 k;

	if (id >= slice)
		return NULL;
	k = bpf_get_smp_processor_id() * slice + id;
	return bpf_map_lookup_elem(map, &k);
}

/* NULL when id is out of range: callers skip per-VIP counting. */
static __always_inline struct kp_vip_stats *kp_vip_stats_get(__u32 id)
{
	return kp_cpu_slot(&kp_vip_stats_v2, id, KP_MAX_VIPS);
}

static __always_inline void kp_be_stats_add(__u32 id, __u32 bytes)
{
	struct kp_backend_stats *s = kp_cpu_slot(&kp_be_stats_v2, id, KP_MAX_BACKENDS);

	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
}

#endif /* KP_STATS_H */
