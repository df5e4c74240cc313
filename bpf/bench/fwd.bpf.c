// SPDX-License-Identifier: GPL-2.0-only
/* fwd.bpf.c: the forwarding ceiling, kp.bpf.c's parse and FIB redirect without any NAT. */
#include "../kp_shared.h"
#include "../kp_parse.h"

/* Interfaces we may redirect to (ifindex -> ifindex), as in kp.bpf.c. Declared here rather than by
 * including kp_maps.h, so the baseline does not allocate the data plane's other maps. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, KP_MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} kp_tx_ports SEC(".maps");

#include "../kp_fib.h"

SEC("xdp")
int kp_bench_fwd(struct xdp_md *ctx)
{
	struct kp_pkt pkt;

	if (kp_parse(ctx, &pkt) != KP_PARSE_OK || pkt.vlan)
		return XDP_PASS;
	return kp_fib_redirect(ctx, &pkt);
}

char LICENSE[] SEC("license") = "GPL";
