/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* kp_stats.h: per-CPU counters; an id outside a map's range is simply not counted. */
#ifndef KP_STATS_H
#define KP_STATS_H

#include "kp_maps.h"

static __always_inline void kp_stat_inc(__u32 code)
{
	__u64 *c = bpf_map_lookup_elem(&kp_stats, &code);

	if (c)
		*c += 1;
}

/* NULL when id is out of range: callers skip per-VIP counting. */
static __always_inline struct kp_vip_stats *kp_vip_stats_get(__u32 id)
{
	return bpf_map_lookup_elem(&kp_vip_stats, &id);
}

static __always_inline void kp_be_stats_add(__u32 id, __u32 bytes)
{
	struct kp_backend_stats *s = bpf_map_lookup_elem(&kp_be_stats, &id);

	if (s) {
		s->packets += 1;
		s->bytes += bytes;
	}
}

#endif /* KP_STATS_H */
