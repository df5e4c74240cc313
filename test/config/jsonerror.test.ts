import t from 'tap';
import { decodeConfigBytes, encodingProblem, jsonErrorAt } from '../../src/config/jsonerror.js';

t.test('jsonErrorAt: -1 for every text JSON.parse accepts', async (t) => {
  const texts = ['{}', '[]', '0', '-1.5e+10', '"a\\u00e9\\n"', ' {"a": [1, {"b": null}, true, false, "x"]} ', JSON.stringify({ vips: [{ prefix: '198.18.100.1/32', port: 80, backends: ['198.18.1.2', { address: '198.18.1.3', weight: 2 }] }] }, null, 2)];
  for (const s of texts) t.equal(jsonErrorAt(s), -1, s.slice(0, 40));
});

t.test('jsonErrorAt: the offset of the first bad character, where V8 says it when it says', async (t) => {
  const cases: [string, number][] = [
    ['{"a": 1 "b": 2}', 8],
    ['{"a": 1,}', 8],
    ["{'a': 1}", 1],
    ['[1, 2', 5],
    ['{"a": tru}', 6],
    ['{"a": 01}', 7],
    ['{"a": "x\\q"}', 9],
    ['{} {}', 3],
    ['', 0],
    ['{"a" 1}', 5],
    ['[1,]', 3],
    ['{"a": -}', 7],
  ];
  for (const [s, at] of cases) {
    t.equal(jsonErrorAt(s), at, JSON.stringify(s));
    const v8 = (() => {
      try {
        JSON.parse(s);
      } catch (e) {
        const m = /at position (\d+)/.exec((e as Error).message);
        return m ? Number(m[1]) : undefined;
      }
    })();
    if (v8 !== undefined) t.equal(at, v8, `${JSON.stringify(s)}: as V8 says`);
  }
  // Every cut of a valid document fails at or before its end.
  const doc = JSON.stringify({ vips: [{ prefix: '198.18.100.1/32', port: 80, backends: ['198.18.1.2'] }] });
  for (let n = 0; n < doc.length; n++) {
    const at = jsonErrorAt(doc.slice(0, n));
    if (at < 0 || at > n) t.fail(`cut at ${n}: ${at}`);
  }
});

t.test('encodingProblem names a BOM, UTF-16 and bad UTF-8', async (t) => {
  t.equal(encodingProblem(Buffer.from('{"vips": []}')), undefined);
  t.equal(encodingProblem(Buffer.from('{"name": "é"}')), undefined);
  t.match(encodingProblem(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), /UTF-8 byte order mark/);
  t.match(encodingProblem(Buffer.from('\ufeff{}', 'utf16le')), /is UTF-16 \(byte order mark FF FE\)/);
  t.match(encodingProblem(Buffer.from('{}', 'utf16le')), /looks like UTF-16/);
  t.match(encodingProblem(Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x7d])), /is not valid UTF-8 \(from byte 2\)/);
});

t.test('decodeConfigBytes: ASCII (the fast copy) and UTF-8 give the same text; bad UTF-8 is named', async (t) => {
  const ascii = '{"vips": [{"vip": "198.18.0.1/32", "port": 80}]}';
  t.equal(decodeConfigBytes(Buffer.from(ascii)), ascii);
  const inner = Buffer.from(ascii).subarray(2, 6); // a view into a larger buffer
  t.equal(decodeConfigBytes(inner), ascii.slice(2, 6));
  const utf8 = '{"name": "caf\u00e9 \u2603 \ud83d\ude00"}';
  t.equal(decodeConfigBytes(Buffer.from(utf8)), utf8, 'non-ASCII decoded as UTF-8, not Latin-1');
  t.match(decodeConfigBytes(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])), { problem: /not valid UTF-8 \(from byte 2\)/ });
});
