// What JSON.parse accepts and a config must not: duplicate keys (the last would win) and nesting
// deep enough to overflow the validators.
import t from 'tap';
import { MAX_JSON_DEPTH, scanJson, scanJsonText } from '../../src/config/jsonscan.js';

t.test('a key given twice is named by its path', async (t) => {
  t.same(scanJson('{"vips": [], "conf": {}, "vips": [1]}'), ['/vips: the key "vips" is given twice in one object (the last would win)']);
  t.same(scanJson('{"vips": [{"prefix": "a", "port": 1, "port": 2}]}'), ['/vips/0/port: the key "port" is given twice in one object (the last would win)']);
  t.same(scanJson('{"vips": [{"port": 1}, {"port": 2}]}'), [], 'the same key in two objects is fine');
  t.same(scanJson('{"a/b": 1, "a/b": 2}'), ['/a~1b: the key "a/b" is given twice in one object (the last would win)'], 'JSON Pointer escaping');
  t.same(scanJson('{"x": "a\\",{}[],\\"b", "y": ["{", "}"], "x": 0}'), ['/x: the key "x" is given twice in one object (the last would win)'], 'braces, commas and quotes inside strings');
  t.same(scanJson('{"a": [[1, 2], {"b": 1, "b": 2}]}'), ['/a/1/b: the key "b" is given twice in one object (the last would win)'], 'array indexes count across nested values');
  t.same(scanJson('{"\\u0070ort": 1, "port": 2}'), ['/port: the key "port" is given twice in one object (the last would win)'], 'keys are compared decoded');
});

t.test('nesting deeper than the limit stops at its path', async (t) => {
  const deep = '['.repeat(100000) + ']'.repeat(100000);
  const errs = scanJson(deep);
  t.equal(errs.length, 1);
  t.match(errs[0], new RegExp(`nested deeper than ${MAX_JSON_DEPTH} levels`));
  t.same(scanJson('{"vips": [{"backends": [{"address": "198.18.1.2"}]}]}'), [], 'a real config is far from it');
  t.same(scanJson('{"a": {"b": {"c": 1}}}', 2), ['/a/b: nested deeper than 2 levels']);
});

t.test("each VIP's text: the objects of the top-level vips array, by index", async (t) => {
  const text = '{"conf": {"vips": [{"x": 1}]}, "vips": [ {"prefix": "198.18.100.1/32", "b": [{"c": "}"}]},\n{"port": 2} , "s", {"d": {}}]}';
  const r = scanJsonText(text);
  t.same(r.errors, []);
  t.same(r.vipTexts, ['{"prefix": "198.18.100.1/32", "b": [{"c": "}"}]}', '{"port": 2}', '', '{"d": {}}'], 'nested vips keys are not the top-level one; a string element has no text');
  t.same(scanJsonText('[{"vips": [{"a": 1}]}]').vipTexts, [], 'only under a root object');
  t.same(scanJsonText('{"v\\u0069ps": [{"a": "\\\\"}]}').vipTexts, ['{"a": "\\\\"}'], 'escaped keys and escaped backslashes before a quote');
});
