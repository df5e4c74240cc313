// The packet library must itself be right before it can judge the data plane.
import t from 'tap';
import { buildPacket, inetChecksum, parsePacket, verifyChecksums, TCP_SYN } from './packet.js';

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
