// SPDX-License-Identifier: GPL-2.0-only
/* fwd.bpf.c: the forwarding ceiling: every frame goes to one fixed egress with fixed MACs, no
 * parsing past Ethernet and no FIB lookup. Nothing that forwards can do less per packet. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include "../kp_shared.h"

/* Where every frame goes; set by the benchmark before traffic starts. */
struct kp_fwd_cfg {
	__u32 ifindex;
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u32 pad;
};
_Static_assert(sizeof(struct kp_fwd_cfg) == 20, "kp_fwd_cfg size");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kp_fwd_cfg);
} kp_fwd_cfg SEC(".maps");

/* The egress, as kp.bpf.c redirects through a devmap. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, KP_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} kp_tx_ports SEC(".maps");

SEC("xdp")
int kp_bench_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct kp_fwd_cfg *cfg;
	__u32 zero = 0;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&kp_fwd_cfg, &zero);
	if (!cfg || !cfg->ifindex)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, cfg->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->smac, ETH_ALEN);
	return bpf_redirect_map(&kp_tx_ports, cfg->ifindex, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
