import { isIPv4 } from 'node:net';
import t from 'tap';
import { addrToBytes, bytesToAddr, ipv4Value, isIPv4Mapped, parsePrefix, writeAddr } from '../../src/maps/addr.js';

t.test('IPv4 is stored as ::ffff:a.b.c.d', async (t) => {
  const b = addrToBytes('198.18.0.1');
  t.same([...b], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]);
  t.ok(isIPv4Mapped(b));
  t.equal(bytesToAddr(b), '198.18.0.1');
});

t.test('IPv6 parses and prints in RFC 5952 form', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['2001:db8::1', '20010db8000000000000000000000001', '2001:db8::1'],
    ['2001:DB8:0:0:1:0:0:1', '20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['::', '00000000000000000000000000000000', '::'],
    ['::1', '00000000000000000000000000000001', '::1'],
    ['2001:db8:1:2:3:4:5:6', '20010db8000100020003000400050006', '2001:db8:1:2:3:4:5:6'],
    ['2001:db8::', '20010db8000000000000000000000000', '2001:db8::'],
    ['2001:0:0:1::1', '20010000000000010000000000000001', '2001:0:0:1::1'],
    ['::ffff:198.18.0.7', '00000000000000000000ffffc6120007', '198.18.0.7'],
  ];
  for (const [text, hex, back] of cases) {
    const b = addrToBytes(text);
    t.equal(b.toString('hex'), hex, text);
    t.equal(bytesToAddr(b), back, `${text} prints as ${back}`);
    t.equal(isIPv4Mapped(b), back.includes('.'), `${text} mapped?`);
  }
});

t.test('bad addresses name the value', async (t) => {
  for (const bad of ['198.18.0.256', '1.2.3', 'fe80:::1', 'host', '']) {
    t.throws(() => addrToBytes(bad), { code: 'KP_ERR_ARG', message: new RegExp(`'${bad.replace(/\./g, '\\.')}'`) }, bad);
  }
  t.throws(() => bytesToAddr(Buffer.alloc(4)), { code: 'KP_ERR_ARG' });
});

t.test('prefixes: length in the 128-bit space', async (t) => {
  const p = parsePrefix('90.0.0.0/8');
  t.equal(p.len128, 104);
  t.equal(p.family, 4);
  t.equal(p.text, '90.0.0.0/8');
  t.equal(p.addr.toString('hex'), '00000000000000000000ffff5a000000');
  t.equal(parsePrefix('198.18.0.1').len128, 128, 'bare IPv4 is a /32');
  t.equal(parsePrefix('0.0.0.0/0').len128, 96);
  const v6 = parsePrefix('2001:db8::/32');
  t.equal(v6.len128, 32);
  t.equal(v6.family, 6);
  t.equal(v6.text, '2001:db8::/32');
  t.equal(parsePrefix('2001:db8::1').len128, 128);
});

t.test('prefix errors name the value and the problem', async (t) => {
  t.throws(() => parsePrefix('90.0.0.1/8'), { code: 'KP_ERR_ARG', message: /'90\.0\.0\.1\/8'.*host bits.*90\.0\.0\.0\/8/ });
  t.throws(() => parsePrefix('90.0.0.0/33'), { code: 'KP_ERR_ARG', message: /'33' must be an integer from 0 to 32/ });
  t.throws(() => parsePrefix('2001:db8::/129'), { code: 'KP_ERR_ARG', message: /from 0 to 128/ });
  t.throws(() => parsePrefix('90.0.0.0/'), { code: 'KP_ERR_ARG', message: /length ''/ });
  t.throws(() => parsePrefix('90.0.0.0/x'), { code: 'KP_ERR_ARG', message: /length 'x'/ });
  t.throws(() => parsePrefix('nope/8'), { code: 'KP_ERR_ARG', message: /'nope' is not an IPv4 or IPv6 address/ });
  t.throws(() => parsePrefix('2001:db8::1/32'), { code: 'KP_ERR_ARG', message: /host bits/ });
});

t.test('ipv4Value accepts exactly what node:net isIPv4 does', async (t) => {
  const cases = ['0.0.0.0', '255.255.255.255', '198.18.0.1', '01.2.3.4', '1.2.3.04', '256.1.1.1', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', '1.2.3.4 ', ' 1.2.3.4', '1.2.3.a', '1000.1.1.1', '00.0.0.0', '1.2.3.255', '1.2.3.256', '::ffff:1.2.3.4', ''];
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  const chars = '0123456789..a';
  for (let i = 0; i < 20000; i++) cases.push(Array.from({ length: 1 + rnd(16) }, () => chars[rnd(chars.length)]).join(''));
  let agree = 0;
  for (const c of cases) {
    const v = ipv4Value(c);
    if ((v !== undefined) !== isIPv4(c)) {
      t.fail(`'${c}': ipv4Value ${v}, isIPv4 ${isIPv4(c)}`);
      return;
    }
    if (v !== undefined && addrToBytes(c).readUInt32BE(12) !== v) {
      t.fail(`'${c}': value ${v}`);
      return;
    }
    agree++;
  }
  t.equal(agree, cases.length, `${cases.length} strings, ${cases.filter((c) => isIPv4(c)).length} of them addresses`);
  t.equal(ipv4Value('198.18.0.1'), 0xc6120001);
});

t.test('writeAddr: addrToBytes in place, over whatever was there', async (t) => {
  for (const s of ['198.18.0.1', '0.0.0.0', '2001:db8::1', '::ffff:198.18.0.9', '2001:db8::198.18.0.1']) {
    const out = Buffer.alloc(20, 0xaa);
    writeAddr(s, out, 2);
    t.same([...out.subarray(2, 18)], [...addrToBytes(s)], s);
    t.same([out[0], out[1], out[18], out[19]], [0xaa, 0xaa, 0xaa, 0xaa], `${s}: nothing written around it`);
  }
});

t.test('parsePrefix: dotted quads (the fast path) as every other prefix', async (t) => {
  const cases: [string, string, number][] = [
    ['198.18.0.0/15', '198.18.0.0/15', 111],
    ['198.18.3.4', '198.18.3.4/32', 128],
    ['198.18.3.4/32', '198.18.3.4/32', 128],
    ['198.18.3.4/032', '198.18.3.4/32', 128],
    ['0.0.0.0/0', '0.0.0.0/0', 96],
    ['255.255.255.255/32', '255.255.255.255/32', 128],
    ['198.18.3.0/24', '198.18.3.0/24', 120],
  ];
  for (const [s, text, len128] of cases) {
    const p = parsePrefix(s);
    t.same([p.text, p.len128, p.family, [...p.addr]], [text, len128, 4, [...addrToBytes(text.split('/')[0])]], s);
  }
  t.throws(() => parsePrefix('198.18.3.4/24'), { code: 'KP_ERR_ARG', message: /host bits are set after \/24 \(did you mean 198\.18\.3\.0\/24\?\)/ });
  t.throws(() => parsePrefix('198.18.3.4/x'), { code: 'KP_ERR_ARG', message: /length 'x'/ });
  t.throws(() => parsePrefix('198.018.3.4/32'), { code: 'KP_ERR_ARG', message: /not an IPv4 or IPv6 address/ });
});
