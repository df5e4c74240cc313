// Pins as an older kpbpf leaves them: this kpbpf's counter arrays sliced per CPU (kp_vip_stats_v2,
// kp_be_stats_v2) replaced by per-CPU arrays under the old names, holding counts for VIP 1 (CPU c:
// firstPkts c + 1, bytes 100) and backend 2 (packets c + 5, bytes 7).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_MAP_TYPE, check, lb, MapCreateOpts, numPossibleCpus, opts } from '../../src/sys/libbpf.js';
import * as c from '../../src/maps/codecs.js';
import { PerCpuMap } from '../../src/maps/map.js';

export function makeOlderPins(pinDir: string): void {
  const ncpus = numPossibleCpus();
  for (const [name, codec] of [['kp_vip_stats', c.vipStats], ['kp_be_stats', c.backendStats]] as const) {
    rmSync(join(pinDir, `${name}_v2`));
    const fd = check('bpf_map_create', lb.bpf_map_create(BPF_MAP_TYPE.PERCPU_ARRAY, name, 4, codec.size, 16, opts(MapCreateOpts, {})));
    check('bpf_obj_pin', lb.bpf_obj_pin(fd, join(pinDir, name)), name);
    const m = new PerCpuMap<number, object>(fd, c.u32, codec as c.Codec<object>, name);
    const zero = codec.decode(Buffer.alloc(codec.size));
    if (name === 'kp_vip_stats') m.update(1, Array.from({ length: ncpus }, (_, cpu) => ({ ...zero, firstPkts: BigInt(cpu + 1), bytes: 100n })));
    else m.update(2, Array.from({ length: ncpus }, (_, cpu) => ({ ...zero, packets: BigInt(cpu + 5), bytes: 7n })));
    m.close();
  }
}

/** VIP 1's and backend 2's counts as makeOlderPins wrote them, CPU by CPU. */
export const olderCounts = () => {
  const ncpus = numPossibleCpus();
  return {
    vip1: Array.from({ length: ncpus }, (_, cpu) => [BigInt(cpu + 1), 100n]),
    backend2: Array.from({ length: ncpus }, (_, cpu) => [BigInt(cpu + 5), 7n]),
  };
};
