// SPDX-License-Identifier: GPL-2.0-only
/* insert.bpf.c: benchmark floor for a new connection: kp.bpf.c's parser and flow key, then one or
 * two inserts into an LRU hash of kp_ct's geometry (key, value, entries set by the loader), nothing
 * else. kp_insert1 is a forward record alone; kp_insert2 adds the reply entry kpbpf keeps. */
#include "../kp_parse.h"
#include "../kp_nat.h"
#include "../kp_shared.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * KP_DEFAULT_BUCKETS);
	__type(key, struct kp_flow_key);
	__type(value, struct kp_ct);
} kp_bench_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_ct);
} kp_bench_val SEC(".maps");

static __always_inline int kp_bench_insert(struct xdp_md *ctx, int entries)
{
	struct kp_flow_key key = {};
	struct kp_pkt pkt;
	struct kp_ct *v;
	__u32 zero = 0;

	if (kp_parse(ctx, &pkt) != KP_PARSE_OK)
		return XDP_ABORTED;
	v = bpf_map_lookup_elem(&kp_bench_val, &zero);
	if (!v)
		return XDP_ABORTED;
	kp_addr_from_v4(key.saddr, pkt.ip->saddr);
	kp_addr_from_v4(key.daddr, pkt.ip->daddr);
	key.sport = pkt.ports[0];
	key.dport = pkt.ports[1];
	key.proto = pkt.proto;
	if (bpf_map_update_elem(&kp_bench_ct, &key, v, BPF_NOEXIST))
		return XDP_DROP;
	if (entries > 1) {
		key.dir = KP_DIR_REPLY;
		if (bpf_map_update_elem(&kp_bench_ct, &key, v, BPF_NOEXIST))
			return XDP_DROP;
	}
	return XDP_PASS;
}

SEC("xdp")
int kp_insert1(struct xdp_md *ctx)
{
	return kp_bench_insert(ctx, 1);
}

SEC("xdp")
int kp_insert2(struct xdp_md *ctx)
{
	return kp_bench_insert(ctx, 2);
}

char LICENSE[] SEC("license") = "GPL";
