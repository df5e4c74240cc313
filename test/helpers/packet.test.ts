// The packet library must itself be right before it can judge the data plane.
import t from 'tap';
import { buildPacket, bytesToV6, inetChecksum, IPV6_DSTOPTS, IPV6_FRAGMENT, IPV6_HOPOPTS, IPV6_ROUTING, parsePacket, v6ToBytes, verifyChecksums, TCP_SYN } from './packet.js';

t.test('inetChecksum matches a known IPv4 header checksum', async (t) => {
  // 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7
  const hdr = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  t.equal(inetChecksum(hdr), 0xb861);
  hdr.writeUInt16BE(0xb861, 10);
  t.equal(inetChecksum(hdr), 0);
});

t.test('built TCP and UDP packets round-trip and verify', async (t) => {
  const tcp = buildPacket({ src: '198.18.1.1', dst: '198.18.2.2', proto: 'tcp', sport: 40000, dport: 80, tcpFlags: TCP_SYN, seq: 7, payload: Buffer.from('abc') });
  const p = parsePacket(tcp);
  t.match(p, { src: '198.18.1.1', dst: '198.18.2.2', proto: 6, sport: 40000, dport: 80, tcpFlags: TCP_SYN, seq: 7, ttl: 64 });
  t.equal(p.payload.toString(), 'abc');
  t.same(verifyChecksums(tcp), { ip: true, l4: true });

  const udp = buildPacket({ vlan: 5, src: '198.18.1.1', dst: '198.18.2.2', proto: 'udp', sport: 1, dport: 53, payload: Buffer.from('x') });
  t.equal(parsePacket(udp).vlan, 5);
  t.same(verifyChecksums(udp), { ip: true, l4: true });

  const bad = Buffer.from(tcp);
  bad[bad.length - 1] ^= 0xff;
  t.same(verifyChecksums(bad), { ip: true, l4: false }, 'a flipped payload byte breaks the L4 checksum');
  const badIp = Buffer.from(tcp);
  badIp[14 + 8] -= 1;
  t.equal(verifyChecksums(badIp).ip, false, 'a changed TTL breaks the IP checksum');

  const none = buildPacket({ src: '198.18.1.1', dst: '198.18.2.2', proto: 'udp', sport: 1, dport: 53, udpNoChecksum: true });
  t.equal(parsePacket(none).l4Checksum, 0);
  t.same(verifyChecksums(none), { ip: true, l4: true });
});

t.test('IPv4 options move the L4 header', async (t) => {
  const opts = Buffer.from([1, 1, 1, 0]); // NOP NOP NOP EOL
  const b = buildPacket({ src: '198.18.1.1', dst: '198.18.2.2', proto: 'udp', sport: 9, dport: 10, ipOptions: opts });
  const p = parsePacket(b);
  t.equal(p.ihl, 6);
  t.equal(p.dport, 10);
  t.same(verifyChecksums(b), { ip: true, l4: true });
});

t.test('IPv6: frames equal ones built by an independent routine (Python struct), and round-trip', async (t) => {
  // Built with Python's struct and ipaddress, checksums by RFC 1071 over RFC 8200's pseudo-header.
  const udp = buildPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 'udp', sport: 1234, dport: 53, payload: Buffer.from('hi') });
  t.equal(udp.toString('hex'), '02000000000202000000000186dd60000000000a114020010db800000000000000000000000120010db800000000000000000000000204d20035000a36f56869');
  const syn = buildPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 'tcp', sport: 40000, dport: 80, seq: 7, tcpFlags: TCP_SYN, ext6: [IPV6_HOPOPTS] });
  t.equal(syn.toString('hex'), '02000000000202000000000186dd60000000001c004020010db800000000000000000000000120010db800000000000000000000000206000104000000009c40005000000007000000005002faf0bce50000');
  t.match(parsePacket(syn), { src: '2001:db8::1', dst: '2001:db8::2', proto: 6, sport: 40000, dport: 80, tcpFlags: TCP_SYN, ttl: 64, totalLength: 68 });
  t.same(verifyChecksums(udp), { ip: true, l4: true });
  t.same(verifyChecksums(syn), { ip: true, l4: true });
  const bad = Buffer.from(udp);
  bad[bad.length - 1] ^= 1;
  t.equal(verifyChecksums(bad).l4, false, 'a flipped payload byte breaks it');
  const none = buildPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 'udp', sport: 1, dport: 53, udpNoChecksum: true });
  t.equal(verifyChecksums(none).l4, false, 'a UDP checksum of 0 is illegal in IPv6');
});

t.test('IPv6: extension headers and a fragment header are walked to the L4 header', async (t) => {
  const p = buildPacket({ src: '2001:db8:1::5', dst: '2001:db8:100::1', proto: 'udp', sport: 7, dport: 8, ext6: [IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS], payload: Buffer.from('x') });
  t.match(parsePacket(p), { proto: 17, sport: 7, dport: 8, src: '2001:db8:1::5', dst: '2001:db8:100::1' });
  t.same(verifyChecksums(p), { ip: true, l4: true });
  const f = parsePacket(buildPacket({ src: '2001:db8::1', dst: '2001:db8::2', proto: 'udp', sport: 7, dport: 8, ext6: [IPV6_FRAGMENT], mf: true, id: 99 }));
  t.match(f, { mf: true, fragOffset: 0, id: 99, sport: 7 });
  t.equal(bytesToV6(v6ToBytes('2001:DB8:0:0:1::1')), '2001:db8::1:0:0:1');
  t.equal(bytesToV6(v6ToBytes('::ffff:198.18.0.1')), '::ffff:c612:1');
});
