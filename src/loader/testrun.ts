// BPF_PROG_TEST_RUN of an XDP program on one packet.
import { addressOf, check, lb, opts, TestRunOpts } from '../sys/libbpf.js';

/** Room for the program to grow the packet (bpf_xdp_adjust_head/tail). */
const OUT_HEADROOM = 4096;
/** struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex */
const XDP_MD_SIZE = 24;

export interface TestRunResult {
  retval: number;
  data: Buffer;
  /** average per repetition, as the kernel reports it */
  durationNs: number;
}

export function testRun(progFd: number, data: Buffer, o: { repeat?: number; ingressIfindex?: number } = {}): TestRunResult {
  const input = Buffer.from(data); // a private copy: its address must not move during the call
  const out = Buffer.alloc(input.length + OUT_HEADROOM);
  let ctx: Buffer | undefined;
  if (o.ingressIfindex !== undefined) {
    ctx = Buffer.alloc(XDP_MD_SIZE);
    ctx.writeUInt32LE(input.length, 4); // data_end must equal the packet length, data and meta 0
    ctx.writeUInt32LE(o.ingressIfindex, 12);
  }
  const ro = opts(TestRunOpts, {
    data_in: addressOf(input),
    data_out: addressOf(out),
    data_size_in: input.length,
    data_size_out: out.length,
    ctx_in: ctx ? addressOf(ctx) : 0n,
    ctx_out: 0n,
    ctx_size_in: ctx ? ctx.length : 0,
    ctx_size_out: 0,
    retval: 0,
    repeat: o.repeat ?? 1,
    duration: 0,
    flags: 0,
    cpu: 0,
    batch_size: 0,
  });
  check('bpf_prog_test_run_opts', lb.bpf_prog_test_run_opts(progFd, ro));
  // Keep the buffers referenced until after the call.
  void input.length;
  void ctx?.length;
  return { retval: ro.retval, data: out.subarray(0, ro.data_size_out), durationNs: ro.duration };
}
