// RFC 7915 header translation (bpf/kp_xlate.h), the header half of NAT46/NAT64, run through a
// fixture program: every translated frame must equal, byte for byte, the frame buildPacket makes
// from scratch for the other family (its own checksums), in every checksum state a frame comes in.
import t from 'tap';
import { loadDataplane, testRun } from '../../src/loader/index.js';
import { buildFixture, notRootReason, removeFixture } from '../loader/fixtures/helpers.js';
import { buildPacket, fragments, IPV6_DSTOPTS, type PacketSpec } from '../helpers/packet.js';
import { XDP } from '../helpers/bpf.js';

const skip = notRootReason() ?? false;
const payload = Buffer.from('translated across families, checksums and all');

/** The fixture's mapping: an IPv4 address a.b.c.d as 64:ff9b::a.b.c.d (source) or 2001:db8:46::a.b.c.d (destination). */
const embed = (prefix: string, v4: string) => {
  const [a, b, c, d] = v4.split('.').map(Number);
  return `${prefix}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
};
const v4 = { src: '198.18.0.10', dst: '198.18.7.20' };
const v6 = { src: embed('64:ff9b::', v4.src), dst: embed('2001:db8:46::', v4.dst) };

t.test('kp_xlate.h through a fixture program', { skip }, async (t) => {
  const obj = buildFixture('xlate');
  t.teardown(() => removeFixture(obj));
  const dp = loadDataplane({ objectPath: obj, buckets: 256 });
  t.teardown(() => dp.close());
  const run = (p: Buffer) => testRun(dp.progFd, p);

  const cases: Array<[string, Partial<PacketSpec>]> = [
    ['TCP', { proto: 'tcp', sport: 40000, dport: 8080, tcpFlags: 0x18, seq: 7, ack: 9 }],
    ['UDP', { proto: 'udp', sport: 5353, dport: 53 }],
    ['TCP, odd payload length', { proto: 'tcp', sport: 1, dport: 2, payload: payload.subarray(1) }],
  ];
  for (const [name, l4] of cases) {
    const spec = { payload, tos: 0xb8, ttl: 61, ...l4 } as PacketSpec;
    t.test(`${name}: IPv4 -> IPv6 and back`, async (t) => {
      const out = run(buildPacket({ ...spec, ...v4 }));
      t.equal(out.retval, XDP.TX);
      t.same(out.data, buildPacket({ ...spec, ...v6 }), 'traffic class = TOS, hop limit = TTL, flow label 0, L4 checksum over the IPv6 pseudo-header');
      const back = run(out.data);
      t.equal(back.retval, XDP.TX);
      t.same(back.data, buildPacket({ ...spec, ...v4, id: 0, df: true }), 'identification 0, DF set, header checksum computed');
    });
    t.test(`${name}: CHECKSUM_PARTIAL stays partial, over the new pseudo-header`, async (t) => {
      const out = run(buildPacket({ ...spec, ...v4, l4Partial: true }));
      t.equal(out.retval, XDP.TX);
      t.same(out.data, buildPacket({ ...spec, ...v6, l4Partial: true }));
      t.same(run(out.data).data, buildPacket({ ...spec, ...v4, id: 0, l4Partial: true }));
    });
  }

  t.test('an IPv4 UDP checksum of 0 ("none") gets a real one in IPv6; an IPv6 one of 0 stays "none" in IPv4', async (t) => {
    const spec = { proto: 'udp', sport: 9, dport: 10, payload } as PacketSpec;
    const out = run(buildPacket({ ...spec, ...v4, udpNoChecksum: true }));
    t.equal(out.retval, XDP.TX);
    t.same(out.data, buildPacket({ ...spec, ...v6 }), 'computed over the datagram');
    const back = run(buildPacket({ ...spec, ...v6, udpNoChecksum: true }));
    t.same(back.data, buildPacket({ ...spec, ...v4, id: 0, udpNoChecksum: true }));
  });

  t.test('a first fragment gets a fragment header (the identification carried); back in IPv4, DF stays clear', async (t) => {
    const spec = { proto: 'udp', sport: 9, dport: 10, payload, id: 0x4242, tos: 0x10, ttl: 33 } as PacketSpec;
    const out = run(fragments({ ...spec, ...v4 }, 16)[0]);
    t.equal(out.retval, XDP.TX);
    const want6 = fragments({ ...spec, ...v6 }, 16)[0];
    t.same(out.data, want6, 'the fragment header after the IPv6 header, the L4 checksum moved for the new pseudo-header');
    const back = run(want6);
    t.same(back.data, fragments({ ...spec, ...v4 }, 16)[0], 'the identification, offset and MF carried, DF clear');
  });

  t.test('what is not translated is left untouched', async (t) => {
    const base = { proto: 'udp', sport: 9, dport: 10, payload } as PacketSpec;
    for (const [why, p] of [
      ['IPv4 options', buildPacket({ ...base, ...v4, ipOptions: Buffer.from([1, 1, 1, 0]) })],
      ['a first fragment without a UDP checksum', buildPacket({ ...base, ...v4, mf: true, udpNoChecksum: true })],
      ['an IPv6 extension header', buildPacket({ ...base, ...v6, ext6: [IPV6_DSTOPTS] })],
      ['a VLAN tag', buildPacket({ ...base, ...v4, vlan: 7 })],
    ] as const) {
      const out = run(p);
      t.equal(out.retval, XDP.PASS, why);
      t.same(out.data, p, `${why}: bytes unchanged`);
    }
  });
});
