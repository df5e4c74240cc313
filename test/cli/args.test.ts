// CLI argument errors: named argument, what was expected, non-zero exit, nothing touched.
// A bpffs path that does not exist proves nothing was touched: any data plane access would fail differently.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KPBPF as KPBPF_BIN } from '../helpers/e2e.js';
import { parseSetWords } from '../../src/cli/set.js';
import { parseVipAddWords } from '../../src/cli/vip.js';
import { main } from '../../src/cli/main.js';
import { BAD_CONFIGS } from '../helpers/bad-configs.js';
import { parseWords, parseUint, parseProtocol } from '../../src/cli/words.js';

async function run(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(['--bpffs', '/nonexistent-kpbpf-test', ...argv], { out: (s) => (out += s), err: (s) => (err += s) });
  return { code, out, err };
}

t.test('keyword parsing', async (t) => {
  const r = parseWords(['protocol', 'udp', 'port', '53', '198.18.1.2', 'flush'], { protocol: parseProtocol, port: (v) => parseUint(v, 'port', 1, 65535), flush: null });
  t.same(r.opts, { protocol: 'udp', port: 53, flush: true });
  t.same(r.rest, ['198.18.1.2']);
  t.same(parseWords(['target', '8080'], { target_port: (v) => Number(v) }, { target: 'target_port' }).opts, { target_port: 8080 });
  t.throws(() => parseWords(['port'], { port: (v) => v }), /port: expected a value/);
  t.throws(() => parseWords(['port', '1', 'port', '2'], { port: (v) => v }), /port: given more than once/);
  t.throws(() => parseUint('70000', 'port', 1, 65535), /port: expected an integer from 1 to 65535, got 70000/);
  t.throws(() => parseUint('8o', 'port', 1, 65535), /port: expected an integer from 1 to 65535, got '8o'/);
  t.throws(() => parseProtocol('sctp'), /protocol: expected tcp or udp, got 'sctp'/);
});

const cases: [string, string[], RegExp][] = [
  ['vip add without port', ['vip', 'add', '198.18.100.10/32'], /port: expected a port number/],
  ['vip add bad port', ['vip', 'add', '198.18.100.10/32', 'port', '0'], /port: expected an integer from 1 to 65535, got 0/],
  ['vip add bad protocol', ['vip', 'add', '198.18.100.10/32', 'protocol', 'icmp', 'port', '80'], /protocol: expected tcp or udp, got 'icmp'/],
  ['vip add bad target', ['vip', 'add', '198.18.100.10/32', 'port', '80', 'target', 'x'], /target: expected an integer from 1 to 65535, got 'x'/],
  ['vip add new_len too small', ['vip', 'add', '198.18.100.10/32', 'port', '80', 'new_len', '3'], /new_len: expected an integer from 7 to 131071, got 3/],
  ['vip add stray word', ['vip', 'add', '198.18.100.10/32', 'port', '80', 'bogus'], /unexpected argument 'bogus'/],
  ['backend add without address', ['backend', 'add', '198.18.100.10/32', 'port', '80'], /expected at least one backend address/],
  ['backend add bad weight', ['backend', 'add', '198.18.100.10/32', 'weight', '0', '198.18.1.2'], /weight: expected an integer from 1 to 65535, got 0/],
  ['conf buckets not a power of two', ['conf', 'buckets', '1000'], /buckets: expected an integer from 1024 to 16777216, got 1000/],
  ['conf buckets power of two check', ['conf', 'buckets', '3000'], /buckets: expected a power of two/],
  ['conf timeout 0', ['conf', 'timeout', '0'], /timeout udp: expected an integer from 1 to 2592000, got 0/],
  ['conf timeout of an unknown state', ['conf', 'timeout', 'tcp_bogus', '5'], /timeout: expected seconds or one of tcp_syn_sent, .*, got 'tcp_bogus'/],
  ['conf timeout without seconds', ['conf', 'timeout', 'tcp_close'], /timeout tcp_close: expected a value/],
  ['conf hash_seed too big', ['conf', 'hash_seed', '4294967296'], /hash_seed: expected an integer from 0 to 4294967295, got 4294967296/],
  ['conf hash_seed twice', ['conf', 'hash_seed', '1', 'hash_seed', '2'], /hash_seed: given more than once/],
  ['conf hash_seed without a value', ['conf', 'hash_seed'], /hash_seed: expected a value/],
  ['vip add nodeport 0', ['vip', 'add', '198.18.100.1/32', 'port', '80', 'nodeport', '0'], /nodeport: expected an integer from 1 to 65535, got 0/],
  ['conf nodeport_range backwards', ['conf', 'nodeport_range', '32767-30000'], /nodeport_range: expected MIN-MAX with 1 <= MIN <= MAX <= 65535 \(e.g. 30000-32767\), got '32767-30000'/],
  ['conf masquerade_address not an address', ['conf', 'masquerade_address', 'node1'], /masquerade_address: expected an IPv4 address or none: 'node1' is not an IPv4/],
  ['conf masquerade_address IPv6', ['conf', 'masquerade_address', '2001:db8::1'], /masquerade_address: expected an IPv4 address or none, got the IPv6 address '2001:db8::1' \(IPv6: masquerade_address6\)/],
  ['conf masquerade_address6 IPv4', ['conf', 'masquerade_address6', '198.18.0.1'], /masquerade_address6: expected an IPv6 address or none, got the IPv4 address '198.18.0.1' \(IPv4: masquerade_address\)/],
  ['conf masquerade_ports in the node port range', ['conf', 'masquerade_ports', '32000-33000'], /masquerade_ports: 32000-33000 overlaps the node port range 30000-32767/],
  ['conf masquerade_ports in a given node port range', ['conf', 'nodeport_range', '40000-41000', 'masquerade_ports', '40500-40600'], /masquerade_ports: 40500-40600 overlaps the node port range 40000-41000/],
  ['conf masquerade_ports in the ephemeral range', ['conf', 'masquerade_ports', '50000-61000'], /masquerade_ports: 50000-61000 overlaps the node's ephemeral ports \d+-\d+ \(net\.ipv4\.ip_local_port_range\)/],
  ['conf masquerade_ports below 1024', ['conf', 'masquerade_ports', '80-90'], /masquerade_ports: expected MIN-MAX with 1024 <= MIN <= MAX <= 65535/],
  ['conf nodeport_addresses not a prefix', ['conf', 'nodeport_addresses', '198.18.0.0/33'], /invalid prefix '198.18.0.0\/33'/],
  ['vip add with an unknown type', ['vip', 'add', '198.18.100.1/32', 'port', '80', 'type', 'service'], /type: expected one of clusterip, nodeport, loadbalancer, externalip, got 'service'/],
  ['vip add encap nat46 on an IPv6 VIP', ['vip', 'add', '2001:db8:100::1/128', 'port', '80', 'encap', 'nat46'], /encap nat46: an IPv4 VIP's NAT, and this VIP is IPv6/],
  ['conf nat46_prefix not a /96', ['conf', 'nat46_prefix', '2001:db8:ff46::/64'], /nat46_prefix: expected an IPv6 \/96 prefix \(RFC 6052, e.g. 64:ff9b::\/96\), got '2001:db8:ff46::\/64'/],
  ['conf nat46_prefix with host bits', ['conf', 'nat46_prefix', '2001:db8:ff46::1/96'], /nat46_prefix: 2001:db8:ff46::1\/96: the last 32 bits of a \/96 prefix are the client's IPv4 address, so they must be 0/],
  ['vip add encap nat64 on an IPv4 VIP', ['vip', 'add', '198.18.100.1/32', 'port', '80', 'encap', 'nat64'], /encap nat64: an IPv6 VIP's NAT, and this VIP is IPv4/],
  ['vip add encap unknown', ['vip', 'add', '198.18.100.1/32', 'port', '80', 'encap', 'gre'], /encap: expected one of nat4, nat6, nat44, nat46, nat64, nat66, got 'gre'/],
  ['set without interface', ['set', 'route'], /set: unknown setting 'route' \(expected: set interface nat4\|nat6 in <ifname> \[del\]\)/],
  ['set interface nat5', ['set', 'interface', 'nat5', 'in', 'eth0'], /set interface: expected nat4 or nat6, got 'nat5'/],
  ['set interface without in', ['set', 'interface', 'nat4', 'out', 'eth0'], /set interface nat4: expected 'in', got 'out'/],
  ['set interface with a stray word', ['set', 'interface', 'nat4', 'in', 'eth0', 'now'], /unexpected argument 'now'/],
  ['attach --cgroup to a file', ['attach', '--cgroup', '/proc/self/status'], /cgroup: \/proc\/self\/status is not a directory/],
  ['as flush without del', ['as', '198.18.100.1/32', 'port', '80', '198.18.1.2', 'flush'], /as: flush applies to a removal \(\.\.\. del flush\)/],
  ['vip add new_len not a prime', ['vip', 'add', '198.18.100.1/32', 'port', '80', 'new_len', '1000'], /new_len: must be a prime number, got 1000/],
  ['run without -f or --kubernetes', ['run', '--no-metrics'], /run: expected -f FILE \(a config file\) or --kubernetes/],
  ['run --kubeconfig without --kubernetes', ['run', '-f', '/dev/null', '--kubeconfig', '/dev/null', '--no-metrics'], /--kubeconfig: only with --kubernetes/],
  ['run --kubernetes with a bad node name', ['run', '--kubernetes', '--node-name', 'No Such_Node', '--no-metrics'], /--node-name: expected a Kubernetes node name/],
  ['run --kubernetes with a bad --healthz', ['run', '--kubernetes', '--healthz', 'here:99999', '--no-metrics'], /--healthz: expected \[ADDR:\]PORT \(e.g. 127.0.0.1:10249\), got 'here:99999'/],
  ['run --kubernetes outside a pod without --kubeconfig', ['run', '--kubernetes', '--node-name', 'n1', '--no-metrics'], /--kubernetes: not in a pod \(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset\); give --kubeconfig FILE/],
  ['run --kubernetes with a missing kubeconfig', ['run', '--kubernetes', '--node-name', 'n1', '--kubeconfig', '/nonexistent/kubeconfig', '--no-metrics'], /--kubeconfig: cannot read \/nonexistent\/kubeconfig/],
  ['show unknown', ['show', 'everything'], /show: expected one of vips, backends, flows, stats, conf, interfaces, cgroups, got 'everything'/],
];

for (const [name, argv, msg] of cases) {
  t.test(name, async (t) => {
    const r = await run(...argv);
    t.equal(r.code, 2, 'exit code 2 for a usage error');
    t.match(r.err, msg);
    t.equal(r.out, '', 'nothing printed on stdout');
  });
}

t.test('commander usage errors', async (t) => {
  const r = await run('attach');
  t.equal(r.code, 2);
  t.match(r.err, /attach: expected interface names, --cgroup, or both/);
  const m = await run('attach', 'eth0', '--mode', 'turbo');
  t.equal(m.code, 2, 'a bad option value: 2, as README says');
  t.match(m.err, /--mode.*turbo.*native, generic, auto/s);
  const a = await run('apply');
  t.equal(a.code, 2, 'a missing required option: 2');
  t.match(a.err, /required option '-f, --file <path>'/);
  const u = await run('nosuchcommand');
  t.equal(u.code, 2, 'an unknown command: 2');
  t.match(u.err, /unknown command 'nosuchcommand'/);
  const v = await run('vip', 'add');
  t.equal(v.code, 2, 'a missing argument: 2');
  t.match(v.err, /missing required argument 'prefix'/);
  t.equal((await run('--help')).code, 0, 'help is not a failure');
});

t.test('a bpffs path with a dot is refused before anything is touched', async (t) => {
  let err = '';
  const code = await main(['--bpffs', '/tmp/x.y', 'show'], { out: () => {}, err: (s) => (err += s) });
  t.equal(code, 2);
  t.match(err, /contains '\.'/);
});

t.test('help lists every command with an example', async (t) => {
  for (const cmd of [['vip', 'add'], ['vip', 'del'], ['backend', 'add'], ['backend', 'del'], ['conf'], ['attach'], ['detach'], ['show'], ['apply']]) {
    let out = '';
    const code = await main([...cmd, '--help'], { out: (s) => (out += s), err: () => {} });
    t.equal(code, 0, `${cmd.join(' ')} --help exits 0`);
    t.match(out, /Example/, `${cmd.join(' ')} --help has an example`);
  }
});

t.test("the seed's set interface nat4 is attach (or detach with del)", async (t) => {
  t.same(parseSetWords(['interface', 'nat4', 'in', 'eth1']), { ifname: 'eth1', del: false });
  t.same(parseSetWords(['interface', 'nat4', 'in', 'eth1', 'del']), { ifname: 'eth1', del: true });
  t.same(parseSetWords(['interface', 'nat6', 'in', 'eth1']), { ifname: 'eth1', del: false }, 'nat6 too: one attachment serves both families');
  t.match(parseVipAddWords(['port', '80', 'encap', 'nat4']), { encap: 'nat4', port: 80 }, 'encap nat4 parses (NAT44, checked against the prefix)');
});

t.test("the design card's NodePort command parses exactly as written", async (t) => {
  t.same(parseVipAddWords(['port', '3306', 'target', '3307', 'nodeport', '30964']), {
    protocol: 'tcp',
    port: 3306,
    targetPort: 3307,
    nodePort: 30964,
  });
  t.equal(parseVipAddWords(['port', '80', 'new_len', 'auto']).newLen, undefined, 'new_len auto: left to the backend count');
  t.equal(parseVipAddWords(['port', '80', 'new_len', '251']).newLen, 251);
  t.equal(parseVipAddWords(['port', '53', 'protocol', 'udp', 'node_port', '30053']).nodePort, 30053, 'the seed spelling node_port');
  t.equal(parseVipAddWords(['port', '80']).nodePort, undefined, 'none unless given');
  t.match(parseVipAddWords(['port', '443', 'type', 'loadbalancer', 'source_ranges', '198.18.0.0/24,198.18.9.0/24']), {
    type: 'loadbalancer',
    sourceRanges: ['198.18.0.0/24', '198.18.9.0/24'],
  });
});

t.test('apply -f - reads the config from standard input, once', async (t) => {
  const cfg = JSON.stringify({ vips: [{ prefix: '198.18.100.10/32', port: 80, backends: ['198.18.1.2'] }] });
  const r = spawnSync(process.execPath, [KPBPF_BIN, '--bpffs', '/nonexistent-kpbpf-test', 'apply', '-f', '-', '--dry-run'], { input: cfg, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /would vip add 198\.18\.100\.10\/32 tcp port 80/);
  const s = spawnSync(process.execPath, [KPBPF_BIN, '--bpffs', '/nonexistent-kpbpf-test', 'apply', '-f', '/dev/stdin', '--dry-run'], { input: cfg, encoding: 'utf8' });
  t.equal(s.status, 0, `/dev/stdin too: ${s.stderr}`);
});

t.test('bad files: duplicate keys, deep nesting and a huge wrong value get paths, not stack traces', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-bad-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const dup = await run('apply', '--dry-run', '-f', file('dup.json', '{"vips": [], "vips": [{"prefix": "198.18.100.1/32", "port": 80}]}'));
  t.equal(dup.code, 1);
  t.match(dup.err, /\/vips: the key "vips" is given twice in one object/);
  const deep = await run('apply', '--dry-run', '-f', file('deep.json', `{"vips": ${'['.repeat(50000)}${']'.repeat(50000)}}`));
  t.equal(deep.code, 1);
  t.match(deep.err, /nested deeper than 32 levels/);
  t.notMatch(deep.err, /RangeError|Maximum call stack/);
  const huge = await run('apply', '--dry-run', '-f', file('huge.json', JSON.stringify({ vips: [{ prefix: '198.18.100.1/32', port: 'x'.repeat(3_000_000) }] })));
  t.equal(huge.code, 1);
  t.ok(huge.err.length < 2000, `the error is short (${huge.err.length} characters)`);
  t.match(huge.err, /\/vips\/0\/port: must be integer, got "xxxx.*\.\.\. \(3,000,002 characters\)/);
});

t.test('the corpus of bad files: each refused with where and what, once, no stack trace, exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-corpus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [i, c] of BAD_CONFIGS.entries()) {
    const p = join(dir, `bad${i}.json`);
    writeFileSync(p, c.body);
    for (const dry of [['--dry-run'], []]) {
      const r = await run('apply', ...dry, '-f', p);
      t.equal(r.code, 1, `${c.name}${dry.length ? ' (dry run)' : ''}: exit 1`);
      t.match(r.err, c.want, `${c.name}: ${r.err.split('\n').slice(0, 3).join(' | ').slice(0, 200)}`);
      t.notMatch(r.err, /^\s+at |Error:|RangeError/m, `${c.name}: no stack trace`);
      t.ok(r.err.length < 4000, `${c.name}: a short message (${r.err.length} characters)`);
      const lines = r.err.split('\n').filter((l) => /^\s*\//.test(l) || /invalid JSON/.test(l));
      t.equal(new Set(lines).size, lines.length, `${c.name}: each problem once`);
    }
  }
});

t.test('a dry run refuses a missing interface as apply does', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kpbpf-if-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, 'c.json');
  writeFileSync(p, JSON.stringify({ interfaces: [{ name: 'kpnosuch0' }], vips: [] }));
  const r = await run('apply', '--dry-run', '-f', p);
  t.equal(r.code, 1);
  t.match(r.err, /interfaces not found: kpnosuch0/);
});

t.test('no case reached the data plane: the bpffs path was never created', async (t) => {
  t.notOk(existsSync('/nonexistent-kpbpf-test'), 'every bad argument is refused before a bpffs is mounted or a program loaded');
});
