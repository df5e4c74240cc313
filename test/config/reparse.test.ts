// A reload that changed one VIP's text parses that VIP alone (src/config/reparse.ts). Whatever it
// returns must be exactly what a parse of the whole file gives, and whatever the whole file would
// refuse it must leave to the whole-file parse (undefined), so that errors are reported the same.
import t, { type Test } from 'tap';
import { parseConfigText, type ConfigSource } from '../../src/config/validate.js';
import { crossIndex, reparseOneVip, changedRegion, type CrossIndex } from '../../src/config/reparse.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Vip = Record<string, any>;
const doc = () => ({
  conf: { nodeport_range: '30000-32767', masquerade_ports: '1024-29999' },
  interfaces: [{ name: 'eth0' }],
  vips: [
    { prefix: '198.18.100.1/32', protocol: 'udp', port: 53, backends: ['198.18.1.1', '198.18.1.2'], name: 'kube-system/dns é' },
    { prefix: '198.18.100.2', port: 80, node_port: 30080, backends: [{ address: '198.18.1.2', weight: 3 }] },
    { prefix: '2001:db8:100::2', port: 80, node_port: 30080, backends: ['2001:db8:1::2'] },
    { prefix: '198.18.100.3', port: 443, type: 'loadbalancer', external_traffic_policy: 'local', health_check_node_port: 31000, node_port: 30443, backends: [{ address: '198.18.1.3', local: true }] },
    { prefix: '198.18.64.0/24', port: 8080, backends: ['198.18.1.4'] },
  ] as Vip[],
});
type Doc = ReturnType<typeof doc>;
const text = (d: Doc) => JSON.stringify(d, null, 2);
/** A parse of the whole file, or undefined where it refuses the file. */
const wholeOrNone = (s: string): ConfigSource | undefined => {
  try {
    return full(s);
  } catch {
    return undefined;
  }
};

const bytes = (s: string) => Buffer.from(s, 'utf8');
/** What each source was parsed from, as the daemon keeps the bytes it applied. */
const fileOf = new WeakMap<ConfigSource, Buffer>();
const full = (s: string) => {
  const src = parseConfigText(s, 'c.json');
  fileOf.set(src, bytes(s));
  return src;
};
const quick = (src: ConfigSource, index: CrossIndex, after: string) => {
  const q = reparseOneVip(src, index, fileOf.get(src)!, bytes(after));
  if (q) fileOf.set(q.source, bytes(after));
  return q;
};

/** The quick path from `before` to `after`, checked against a whole parse of `after`. */
function step(t: Test, before: ConfigSource, after: string): ConfigSource | undefined {
  const index = crossIndex(before.config.vips);
  const q = quick(before, index, after);
  const whole = wholeOrNone(after);
  if (!q) return undefined;
  t.ok(whole, 'the quick path only passes what the whole file passes');
  if (!whole) return undefined;
  t.same(q.source.config, whole.config, 'the same config as a parse of the whole file');
  t.same(q.source.vipTexts, whole.vipTexts, 'the same VIP texts');
  t.same(q.source.vipStarts, whole.vipStarts, 'the same VIP offsets');
  t.same(index, crossIndex(whole.config.vips), 'the index follows the new config');
  return q.source;
}

t.test('a one-endpoint change, and more after it, parse one VIP and equal a whole parse', async (t) => {
  const d = doc();
  let src = full(text(d));
  d.vips[1].backends = [{ address: '198.18.1.9', weight: 3 }];
  src = step(t, src, text(d))!;
  t.ok(src, 'taken');
  d.vips[0].backends.push('198.18.1.77'); // longer text: the later VIPs' offsets move
  src = step(t, src, text(d))!;
  t.ok(src, 'taken again');
  d.vips[4].backends = ['198.18.1.5', '198.18.1.6', '198.18.1.7'];
  t.ok(step(t, src, text(d)), 'and after the offsets moved');
});

t.test('a change of one VIP that stays valid: its port, type, node port, weight', async (t) => {
  const base = full(text(doc()));
  const edits: Array<(d: Doc) => void> = [
    (d) => (d.vips[0].port = 5353),
    (d) => ((d.vips[1] as Record<string, unknown>).node_port = 30081),
    (d) => ((d.vips[4] as Record<string, unknown>).new_len = 1021),
    (d) => ((d.vips[3] as Record<string, unknown>).health_check_node_port = 31001),
    (d) => (d.vips[2].prefix = '2001:db8:100::3'),
  ];
  for (const e of edits) {
    const d = doc();
    e(d);
    t.ok(step(t, base, text(d)), String(e));
  }
});

t.test('what the whole file must see goes to the whole-file parse', async (t) => {
  const base = full(text(doc()));
  const cases: Array<[string, (d: Doc) => void]> = [
    ['conf changed', (d) => (d.conf.nodeport_range = '30000-32000')],
    ['interfaces changed', (d) => (d.interfaces[0].name = 'eth1')],
    ['a VIP added', (d) => d.vips.push({ prefix: '198.18.100.9', port: 80, backends: ['198.18.1.9'] } as never)],
    ['a VIP removed', (d) => d.vips.splice(1, 1)],
    ['two VIPs changed', (d) => ((d.vips[0].port = 54), (d.vips[4].port = 8081))],
    ['a bad address', (d) => (d.vips[1].backends = ['198.18.1'] as never)],
    ['new_len not prime', (d) => ((d.vips[0] as Record<string, unknown>).new_len = 1000)],
    ['the identity of another VIP', (d) => (d.vips[0] = { ...d.vips[0], prefix: '198.18.100.2/32', protocol: 'tcp', port: 80 })],
    ["another VIP's node port, same family", (d) => ((d.vips[3] as Record<string, unknown>).node_port = 30080)],
    ['an IPv4 TCP node port that is a health-check port', (d) => ((d.vips[1] as Record<string, unknown>).node_port = 31000)],
    ['a health-check port that is a TCP node port', (d) => ((d.vips[3] as Record<string, unknown>).health_check_node_port = 30080)],
    ['an unknown key', (d) => ((d.vips[4] as Record<string, unknown>).bogus = 1)],
    ['a node port outside the range', (d) => ((d.vips[1] as Record<string, unknown>).node_port = 29000)],
  ];
  for (const [name, e] of cases) {
    const d = doc();
    e(d);
    const index = crossIndex(base.config.vips);
    const before = structuredClone(index);
    t.equal(quick(base, index, text(d)), undefined, name);
    t.same(index, before, `${name}: the index is untouched`);
  }
  const s = text(doc());
  const i = s.indexOf('"port": 53') + 1;
  const dup = `${s.slice(0, i - 1)}"port": 54, ${s.slice(i - 1)}`; // a key twice in the VIP
  t.equal(quick(base, crossIndex(base.config.vips), dup), undefined, 'a duplicate key');
  const broken = s.replace('"port": 53', '"port": 53}, {"port": 1');
  t.equal(quick(base, crossIndex(base.config.vips), broken), undefined, 'a text that splits the VIP in two');
});

t.test('random edits inside one VIP: the quick path agrees with the whole file, or leaves it to it', async (t) => {
  const base = text(doc());
  const src = full(base);
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  const alphabet = '0123456789.:,"{}[] abfx/';
  let taken = 0;
  for (let k = 0; k < 400; k++) {
    const v = rnd(src.vipStarts.length);
    const at = base.indexOf(src.vipTexts[v]) + rnd(src.vipTexts[v].length); // a character offset
    const cut = rnd(3);
    const put = Array.from({ length: rnd(3) }, () => alphabet[rnd(alphabet.length)]).join('');
    const edited = base.slice(0, at) + put + base.slice(at + cut);
    const index = crossIndex(src.config.vips);
    const q = quick(src, index, edited);
    const whole = wholeOrNone(edited);
    if (q) {
      taken++;
      if (!whole || JSON.stringify(q.source.config) !== JSON.stringify(whole.config)) {
        t.fail(`edit ${k} at ${at}: quick ${JSON.stringify(q.source.config.vips[q.index])}, whole ${whole ? 'differs' : 'refuses'}`);
        return;
      }
    }
  }
  t.pass(`400 edits agree (${taken} taken by the quick path)`);
});

t.test('changedRegion: where two files differ', async (t) => {
  const r = (a: string, b: string) => changedRegion(bytes(a), bytes(b));
  t.same(r('abcdef', 'abXdef'), { start: 2, endA: 3, endB: 3 });
  t.same(r('abcdef', 'abdef'), { start: 2, endA: 3, endB: 2 });
  t.same(r('aaaa', 'aaaaa'), { start: 4, endA: 4, endB: 5 });
  t.same(r('same', 'same'), { start: 4, endA: 4, endB: 4 });
  const long = 'x'.repeat(100000); // past the chunk size, on both sides
  t.same(r(`${long}a${long}`, `${long}bb${long}`), { start: 100000, endA: 100001, endB: 100002 });
  t.same(r(`${long}a${long}`, `${long}b${long.slice(1)}`), { start: 100000, endA: 100002, endB: 100001 });
  t.same(r('é1', 'é2'), { start: 2, endA: 3, endB: 3 }, 'offsets are bytes');
});

t.test('a file with non-ASCII text: VIP offsets are bytes, and a change after it is still quick', async (t) => {
  const d = doc(); // VIP 0's name has an é: every later VIP starts one byte further than its character
  const src = full(text(d));
  const s = text(d);
  t.equal(src.vipStarts[1], Buffer.byteLength(s.slice(0, s.indexOf(src.vipTexts[1]))), 'byte offset');
  t.equal(src.vipStarts[1], s.indexOf(src.vipTexts[1]) + 1);
  d.vips[3].backends = [{ address: '198.18.1.33', local: true }];
  t.ok(step(t, src, text(d)), 'taken');
  const again = step(t, full(text(d)), text({ ...d, vips: d.vips.map((v, i) => (i === 0 ? { ...v, name: 'kube-system/dns ü ö' } : v)) }));
  t.ok(again, 'a change of the non-ASCII text itself is quick too');
});
