import t from 'tap';
import { canonicalAddress, canonicalPrefix, parseAddress, parsePrefix } from '../../src/config/address.js';

t.test('canonical addresses', async (t) => {
  const cases: [string, string, 4 | 6][] = [
    ['198.18.0.1', '198.18.0.1', 4],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1', 6],
    ['2001:db8:0000::0001', '2001:db8::1', 6],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 6], // first of two equal runs
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1', 6], // longest run
    ['2001:db8:1:1:1:1:0:1', '2001:db8:1:1:1:1:0:1', 6], // a single zero group is not compressed
    ['::', '::', 6],
    ['::1', '::1', 6],
    ['2001:db8::', '2001:db8::', 6],
    ['::ffff:198.18.0.1', '198.18.0.1', 4], // the data plane stores IPv4 this way
    ['::ffff:c612:1', '198.18.0.1', 4],
    ['2001:db8::198.18.0.1', '2001:db8::c612:1', 6],
  ];
  for (const [input, want, family] of cases) {
    const a = parseAddress(input);
    t.same(typeof a === 'string' ? a : [a.text, a.family], [want, family], input);
    t.equal(canonicalAddress(input), want);
  }
});

t.test('invalid addresses', async (t) => {
  for (const s of ['', 'x', '198.18.0', '198.18.0.256', '01.2.3.4', '2001:db8::1::2', 'fe80::1%eth0', '198.18.0.1/32', ' 198.18.0.1']) {
    t.type(parseAddress(s), 'string', JSON.stringify(s));
  }
  t.throws(() => canonicalAddress('nope'), { code: 'KP_ERR_ARG', message: /'nope' is not an IPv4/ });
});

t.test('prefixes', async (t) => {
  t.equal(canonicalPrefix('198.18.100.1'), '198.18.100.1/32', 'a bare address is a host prefix');
  t.equal(canonicalPrefix('198.18.0.0/15'), '198.18.0.0/15');
  t.equal(canonicalPrefix('0.0.0.0/0'), '0.0.0.0/0');
  t.equal(canonicalPrefix('2001:DB8:0::/32'), '2001:db8::/32');
  t.equal(canonicalPrefix('2001:db8::1'), '2001:db8::1/128');
  t.equal(canonicalPrefix('::ffff:198.18.0.0/111'), '198.18.0.0/15', 'IPv4-mapped prefix');
  const p = parsePrefix('198.18.100.0/24');
  t.same(typeof p === 'string' ? p : [p.family, p.len, p.prefix], [4, 24, '198.18.100.0/24']);
  t.match(parsePrefix('198.18.100.1/24'), /host bits are set after \/24 \(the network is 198.18.100.0\/24\)/);
  t.match(parsePrefix('2001:db8::1/64'), /network is 2001:db8::\/64/);
  t.match(parsePrefix('198.18.0.0/33'), /from 0 to 32/);
  t.match(parsePrefix('2001:db8::/129'), /from 0 to 128/);
  t.match(parsePrefix('198.18.0.0/'), /prefix length ''/);
  t.match(parsePrefix('198.18.0.0/1a'), /prefix length '1a'/);
  t.match(parsePrefix('::ffff:0.0.0.0/80'), /\/96 or longer/);
  t.throws(() => canonicalPrefix('198.18.0.1/8'), { code: 'KP_ERR_ARG', message: /invalid prefix '198.18.0.1\/8'/ });
});

t.test('bytes of addresses and prefixes', async (t) => {
  const a = parseAddress('198.18.3.4');
  t.same(typeof a === 'string' ? a : [...a.bytes], [198, 18, 3, 4], 'a dotted quad');
  const p = parsePrefix('198.18.0.0/15');
  t.same(typeof p === 'string' ? p : [p.text, p.len, p.prefix, [...p.bytes]], ['198.18.0.0', 15, '198.18.0.0/15', [198, 18, 0, 0]], 'a prefix keeps its bytes');
  t.match(parsePrefix('198.18.0.1/15'), /host bits are set after \/15 \(the network is 198\.18\.0\.0\/15\)/);
  const v6 = parsePrefix('2001:db8::/32');
  t.same(typeof v6 === 'string' ? v6 : [...v6.bytes.subarray(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
});
