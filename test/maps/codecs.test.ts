import t from 'tap';
import * as c from '../../src/maps/codecs.js';

const hex = (b: Buffer) => b.toString('hex');
const V4 = (a: string) => '00000000000000000000ffff' + a; // ::ffff: prefix + 4 address bytes in hex

t.test('flow key: addresses mapped, ports in network order, padding zero', async (t) => {
  const k = { saddr: '198.18.0.1', daddr: '198.18.1.10', sport: 40000, dport: 80, proto: 6, dir: 0 };
  const b = c.flowKey.encode(k);
  t.equal(b.length, 40);
  t.equal(hex(b), V4('c6120001') + V4('c612010a') + '9c40' + '0050' + '06' + '000000');
  t.same(c.flowKey.decode(b), k);
});

t.test('vip key and prefix key', async (t) => {
  const k = { addr: '198.18.0.10', port: 443, proto: 17 };
  t.equal(hex(c.vipKey.encode(k)), V4('c612000a') + '01bb' + '11' + '00');
  t.same(c.vipKey.decode(c.vipKey.encode(k)), k);
  const p = { len128: 104, proto: 6, port: 80, addr: '90.0.0.0' };
  const pb = c.vipPfxKey.encode(p);
  // prefixlen = 32 (proto, pad, port) + 104, host order; then proto, pad, port (BE), address
  t.equal(hex(pb), '88000000' + '06' + '00' + '0050' + V4('5a000000'));
  t.same(c.vipPfxKey.decode(pb), p);
});

t.test('vip, backend, flow, rev nat, config: exact bytes and round trip', async (t) => {
  const vip = { id: 7, tableLen: 1021, flags: 1, targetPort: 8080, nodePort: 0 };
  t.equal(hex(c.vip.encode(vip)), '07000000' + 'fd030000' + '0100' + '1f90' + '00000000');
  t.same(c.vip.decode(c.vip.encode(vip)), vip);

  const be = { addr: '198.18.2.3', port: 8080, state: 1, gen: 5, vipId: 7, weight: 2 };
  t.equal(hex(c.backend.encode(be)), V4('c6120203') + '1f90' + '01' + '00' + '05000000' + '07000000' + '0200' + '0000');
  t.same(c.backend.decode(c.backend.encode(be)), be);

  const ct = { vipAddr: '198.18.0.10', lastSeenNs: 0x0102030405060708n, backendId: 9, backendGen: 2, vipId: 7, vipPort: 80, clientPort: 40000, state: 3, flags: 0x9 };
  t.equal(
    hex(c.ct.encode(ct)),
    '0807060504030201' + '09000000' + '02000000' + '07000000' + '9c40' + '03' + '09' + '0050' + '0000' + '00000000' + V4('c612000a') + '00'.repeat(16),
  );
  t.same(c.ct.decode(c.ct.encode(ct)), ct);

  const rk = { saddr: '198.18.0.1', daddr: '198.18.0.2', sport: 1, dport: 2, proto: 17, dir: 1 };
  t.equal(hex(c.flowKey.encode(rk)).slice(2 * 32), '0001' + '0002' + '11' + '01' + '0000', 'ports, proto, dir, pad');

  const cf = { timeoutS: [0, 120, 60, 86400, 120, 3600, 30, 120, 10, 30, 120, 0], hashSeed: 0xdeadbeef, nVipPrefixes: 3, flags: 1, hopGen: 7 };
  const cfHex = hex(c.config.encode(cf));
  t.equal(cfHex.slice(0, 32), 'efbeadde' + '03000000' + '01000000' + '07000000');
  t.equal(cfHex.slice(32 + 3 * 8, 32 + 4 * 8), '80510100', 'timeout_s[KP_CT_ESTABLISHED] = 86400');
  t.same(c.config.decode(c.config.encode(cf)), cf);
});

t.test('counters, devmap value, u32/u64', async (t) => {
  const vs = { existingPkts: 1n, firstPkts: 2n, untrackedPkts: 3n, noServerPkts: 4n, bytes: 5n, replyPkts: 6n, replyBytes: 7n };
  const vb = c.vipStats.encode(vs);
  t.equal(vb.length, 56);
  for (let i = 0; i < 7; i++) t.equal(vb.readBigUInt64LE(i * 8), BigInt(i + 1), `vip stats field ${i}`);
  t.same(c.vipStats.decode(vb), vs);
  const bs = { packets: 11n, bytes: 1500n };
  t.equal(hex(c.backendStats.encode(bs)), '0b00000000000000' + 'dc05000000000000');
  t.same(c.backendStats.decode(c.backendStats.encode(bs)), bs);
  t.equal(hex(c.devmapVal.encode({ ifindex: 3, prog: 0 })), '0300000000000000');
  t.equal(hex(c.u32.encode(0x01020304)), '04030201');
  t.equal(c.u64.decode(c.u64.encode(2n ** 63n + 5n)), 2n ** 63n + 5n);
});

t.test('kp_masq and a masqueraded reply entry round-trip', async (t) => {
  t.same(c.masq.decode(c.masq.encode({ addr: '198.18.0.1', portMin: 61000, portMax: 65535 })), { addr: '198.18.0.1', portMin: 61000, portMax: 65535 });
  t.same(c.masq.decode(c.masq.encode({ addr: '', portMin: 0, portMax: 0 })), { addr: '', portMin: 0, portMax: 0 }, 'no address: all zero');
  const rv = { vipAddr: '198.18.0.1', clientAddr: '198.18.0.10', lastSeenNs: 5n, backendId: 3, backendGen: 1, vipId: 2, vipPort: 30080, clientPort: 40000, state: 3, flags: c.CT_FLAG.reply | c.CT_FLAG.masq };
  t.same(c.ct.decode(c.ct.encode(rv)), rv, 'the client address is read only from masqueraded reply entries');
  t.notOk('clientAddr' in c.ct.decode(c.ct.encode({ ...rv, flags: c.CT_FLAG.reply })), 'others cache a next hop there');
});

t.test('decode at an offset', async (t) => {
  const two = Buffer.concat([c.vip.encode({ id: 1, tableLen: 7, flags: 0, targetPort: 1, nodePort: 0 }), c.vip.encode({ id: 2, tableLen: 11, flags: 0, targetPort: 2, nodePort: 0 })]);
  t.same(c.vip.decode(two, 16), { id: 2, tableLen: 11, flags: 0, targetPort: 2, nodePort: 0 });
});

t.test('every codec size equals its layout size, and fields tile the struct', async (t) => {
  const pairs: Array<[keyof typeof c.LAYOUTS, c.Codec<unknown>]> = [
    ['kp_flow_key', c.flowKey], ['kp_ct', c.ct], ['kp_frag_key', c.fragKey], ['kp_frag', c.frag], ['kp_hop', { size: 20 } as c.Codec<unknown>], ['kp_nexthop', c.nextHop], ['kp_vip_key', c.vipKey],
    ['kp_vip_pfx_key', c.vipPfxKey], ['kp_src_key', c.srcKey], ['kp_settings', c.settings], ['kp_vip', c.vip], ['kp_backend', c.backend], ['kp_config', c.config],
    ['kp_vip_stats', c.vipStats], ['kp_backend_stats', c.backendStats], ['bpf_devmap_val', c.devmapVal],
    ['kp_ct_hop', { size: 16 } as c.Codec<unknown>], ['kp_masq', c.masq], ['kp_sock_key', c.sockKey], ['kp_sock_nat', c.sockNat], ['kp_affinity_key', c.affinityKey], ['kp_affinity', c.affinity],
  ];
  t.equal(pairs.length, Object.keys(c.LAYOUTS).length, 'a codec for every layout');
  for (const [name, codec] of pairs) {
    const l: c.StructLayout = c.LAYOUTS[name];
    t.equal(codec.size, l.size, `${name} size`);
    const fields = Object.values(l.fields).sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [o, s] of fields) {
      t.equal(o, at, `${name}: no hole or overlap at ${o}`);
      at = o + s;
    }
    t.equal(at, l.size, `${name}: fields cover the struct`);
  }
});
