// CHECKSUM_PARTIAL-safe L4 checksum updates. A frame from a local sender with TX checksum offload
// carries fold(pseudo-header sum) in its TCP/UDP check field; DNAT/SNAT must move that sum to the
// new addresses (and ignore the ports, which the NIC sums later), while a complete checksum gets
// the RFC 1624 update. A complete checksum that happens to equal fold(pseudo) (1 in 65536) must
// be recognised by verifying the whole segment. Fixtures in Katran's form over BPF_PROG_TEST_RUN.
import t from 'tap';
import { loadDataplane, testRun, type Dataplane } from '../../src/loader/index.js';
import { addU64 } from '../../src/maps/map.js';
import {
  buildPacket,
  completeChecksum,
  csumFold,
  IPPROTO_TCP,
  IPPROTO_UDP,
  l4Checksum,
  layout,
  pseudoHeaderFold,
  TCP_ACK,
  TCP_SYN,
  verifyChecksums,
  type PacketSpec,
} from '../helpers/packet.js';
import { testConfig, BACKEND_STATE, bpfSkipReason, KP_CONF_F_NO_FIB, KP_OBJECT, KP_STAT, XDP } from '../helpers/bpf.js';

const TABLE_LEN = 7;
const CLIENT = '198.18.0.10';
const VIP_TCP = { id: 1, addr: '198.18.10.1', port: 80, proto: IPPROTO_TCP };
const VIP_UDP = { id: 2, addr: '198.18.10.2', port: 53, proto: IPPROTO_UDP };
const BE_TCP = { id: 1, addr: '198.18.20.1', port: 8080, vipId: 1 };
const BE_UDP = { id: 2, addr: '198.18.20.3', port: 5353, vipId: 2 };
/** Segment lengths that exercise every piece of the program's segment sum: 512-byte chunks,
 * 256..4-byte pieces, the 2-byte and the odd last byte. */
const SEG_LENGTHS = [20, 21, 22, 23, 27, 60, 511, 512, 513, 1023, 1480, 2047, 3001];

function setup(dp: Dataplane): void {
  dp.maps.config.update(0, testConfig({ flags: KP_CONF_F_NO_FIB }));
  for (const v of [VIP_TCP, VIP_UDP]) {
    dp.maps.vips.update({ addr: v.addr, port: v.port, proto: v.proto }, { id: v.id, tableLen: TABLE_LEN, flags: 0, targetPort: 0 });
  }
  for (const b of [BE_TCP, BE_UDP]) {
    dp.maps.backends.update(b.id, { addr: b.addr, port: b.port, state: BACKEND_STATE.active, gen: 1, vipId: b.vipId, weight: 1 });
    dp.setMaglevTable(b.vipId, Array(TABLE_LEN).fill(b.id));
  }
}

const HDR = { tcp: 20, udp: 8 } as const;

function toVip(proto: 'tcp' | 'udp', sport: number, segLen: number, extra: Partial<PacketSpec> = {}): PacketSpec {
  const vip = proto === 'tcp' ? VIP_TCP : VIP_UDP;
  const payload = Buffer.alloc(segLen - HDR[proto]);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + sport) & 0xff;
  return { src: CLIENT, dst: vip.addr, proto, sport, dport: vip.port, tcpFlags: TCP_SYN, seq: 1000, payload, ...extra };
}

const dnat = (p: PacketSpec): PacketSpec => {
  const b = p.proto === 'tcp' ? BE_TCP : BE_UDP;
  return { ...p, dst: b.addr, dport: b.port };
};

function reply(p: PacketSpec, extra: Partial<PacketSpec> = {}): PacketSpec {
  const b = p.proto === 'tcp' ? BE_TCP : BE_UDP;
  return { src: b.addr, dst: CLIENT, proto: p.proto, sport: b.port, dport: p.sport, tcpFlags: TCP_SYN | TCP_ACK, seq: 5000, ack: 1001, payload: Buffer.from('reply!'), ...extra };
}

const snat = (r: PacketSpec, vip: { addr: string; port: number }): PacketSpec => ({ ...r, src: vip.addr, sport: vip.port });

/** A complete packet whose check field equals fold(pseudo): searches the payload's first two
 * bytes (an even offset in the segment) for the value that makes it so. With those bytes zero
 * the checksum is C0 = ~fold(S), so with value x it is ~fold(~C0 + x): O(1) per candidate, and
 * each hit is confirmed on the built packet. */
function lookalike(p: PacketSpec): PacketSpec {
  const payload = Buffer.from(p.payload!);
  if (payload.length < 2) throw new Error('lookalike needs a payload of at least 2 bytes');
  payload.writeUInt16BE(0, 0);
  const f0 = buildPacket({ ...p, payload });
  const target = pseudoHeaderFold(f0);
  const s0 = ~l4Checksum(f0) & 0xffff;
  for (let x = 0; x <= 0xffff; x++) {
    if ((~csumFold(s0 + x) & 0xffff) !== target) continue;
    const spec = { ...p, payload: Buffer.from(payload) };
    spec.payload.writeUInt16BE(x, 0);
    const f = buildPacket(spec);
    if (l4Checksum(f) === pseudoHeaderFold(f)) return spec;
  }
  throw new Error('no lookalike payload found');
}

interface Fixture {
  description: string;
  input: Buffer;
  output: Buffer;
  /** 'partial': the output field must be fold(new pseudo) and complete to a valid checksum */
  kind: 'partial' | 'complete';
  stat: number;
}

function fixtures(): Fixture[] {
  const out: Fixture[] = [];
  const add = (description: string, inSpec: PacketSpec, outSpec: PacketSpec, kind: Fixture['kind'], stat: number): void => {
    const partial = kind === 'partial';
    out.push({ description, input: buildPacket({ ...inSpec, l4Partial: partial }), output: buildPacket({ ...outSpec, l4Partial: partial }), kind, stat });
  };
  let sport = 41000;
  for (const proto of ['tcp', 'udp'] as const) {
    const vip = proto === 'tcp' ? VIP_TCP : VIP_UDP;
    const flowSport = sport;
    for (const len of SEG_LENGTHS) {
      const p = toVip(proto, sport++, len);
      add(`partial ${proto} to the VIP, segment ${len} bytes: DNAT moves fold(pseudo) to the backend`, p, dnat(p), 'partial', KP_STAT.DNAT);
      if (len >= HDR[proto] + 2) {
        const q = lookalike(toVip(proto, sport++, len));
        add(`complete ${proto} whose check equals fold(pseudo), segment ${len} bytes: standard DNAT update`, q, dnat(q), 'complete', KP_STAT.DNAT);
      }
    }
    // Replies: the first flow above created the rev-nat entry.
    const p = toVip(proto, flowSport, SEG_LENGTHS[0]);
    const r = reply(p);
    add(`partial ${proto} reply from the backend: SNAT moves fold(pseudo) to the VIP`, r, snat(r, vip), 'partial', KP_STAT.SNAT);
    const rl = lookalike(reply(p, { seq: 6000 }));
    add(`complete ${proto} reply whose check equals fold(pseudo): standard SNAT update`, rl, snat(rl, vip), 'complete', KP_STAT.SNAT);
  }
  return out;
}

const reason = bpfSkipReason();
if (reason) {
  t.skip(`CHECKSUM_PARTIAL fixtures: ${reason}`, async () => {});
} else {
  t.test('the packet helpers: a partial field is fold(pseudo) and completes to the full checksum', async (t) => {
    for (const proto of ['tcp', 'udp'] as const) {
      for (const len of SEG_LENGTHS) {
        const p = toVip(proto, 40000 + len, len);
        const partial = buildPacket({ ...p, l4Partial: true });
        t.equal(l4Checksum(partial), pseudoHeaderFold(partial), `${proto} ${len}: field = fold(pseudo)`);
        t.equal(completeChecksum(partial).toString('hex'), buildPacket(p).toString('hex'), `${proto} ${len}: completes to the full checksum`);
      }
      const q = lookalike(toVip(proto, 40999, 64));
      const f = buildPacket(q);
      t.same(verifyChecksums(f), { ip: true, l4: true }, `${proto} lookalike is a complete checksum`);
      t.equal(l4Checksum(f), pseudoHeaderFold(f), `${proto} lookalike field = fold(pseudo)`);
    }
  });

  const dp = loadDataplane({ objectPath: KP_OBJECT, buckets: 1024 });
  t.teardown(() => dp.close());
  setup(dp);

  for (const f of fixtures()) {
    t.test(f.description, async (t) => {
      const before = dp.maps.stats.sum(f.stat, addU64) ?? 0n;
      const res = testRun(dp.progFd, f.input);
      const after = dp.maps.stats.sum(f.stat, addU64) ?? 0n;
      t.equal(res.retval, XDP.PASS, 'verdict');
      t.equal(after - before, 1n, f.stat === KP_STAT.DNAT ? 'DNAT counted' : 'SNAT counted');
      t.equal(res.data.toString('hex'), f.output.toString('hex'), 'output bytes');
      if (f.kind === 'partial') {
        t.equal(l4Checksum(res.data), pseudoHeaderFold(res.data), 'field = fold(new pseudo-header)');
        t.same(verifyChecksums(completeChecksum(res.data)), { ip: true, l4: true }, 'completed by the NIC it verifies');
      } else {
        t.same(verifyChecksums(res.data), { ip: true, l4: true }, 'checksums verify from scratch');
      }
    });
  }

  t.test('a frame cut short (its datagram claims more than it holds) is discarded, not rewritten, partial or not', async (t) => {
    const p = toVip('tcp', 42000, 600);
    const cut = (b: Buffer): Buffer => b.subarray(0, layout(b).l4 + 300); // total length claims 600
    for (const l4Partial of [true, false]) {
      const input = cut(buildPacket({ ...p, l4Partial }));
      const res = testRun(dp.progFd, input);
      t.equal(res.retval, XDP.DROP, `verdict (${l4Partial ? 'partial' : 'complete'})`);
      t.equal(res.data.toString('hex'), input.toString('hex'), 'not rewritten');
    }
  });

  t.test('UDP checksum 0 stays 0 (not mistaken for partial)', async (t) => {
    const p = toVip('udp', 42001, 40, { udpNoChecksum: true });
    const res = testRun(dp.progFd, buildPacket(p));
    t.equal(res.data.toString('hex'), buildPacket({ ...dnat(p), udpNoChecksum: true }).toString('hex'), 'output bytes');
    t.equal(l4Checksum(res.data), 0, 'check 0');
  });
}
