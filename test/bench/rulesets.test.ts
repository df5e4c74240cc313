import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  makeServices,
  iptablesRestore,
  iptablesEndpointChange,
  nftRuleset,
  nftEndpointChange,
  kpbpfConfig,
  ipv4ToInt,
  svcChain,
  sepChain,
  chainHash,
  extChain,
  withNodePorts,
} from '../../src/bench/rulesets.js';
import { skipUnlessCi } from '../helpers/ci.js';

const inBench = (a: string) => ((ipv4ToInt(a) & 0xfffe0000) >>> 0) === ipv4ToInt('198.18.0.0');

t.test('services: unique VIPs and endpoints inside 198.18.0.0/15', async (t) => {
  const s = makeServices(1000);
  t.equal(s.length, 1000);
  t.equal(new Set(s.map((x) => x.vip)).size, 1000);
  t.ok(s.every((x) => x.endpoints.length === 8 && new Set(x.endpoints).size === 8), '8 distinct endpoints each');
  const all = s.flatMap((x) => [x.vip, ...x.endpoints]);
  t.ok(all.every(inBench), 'every address in 198.18.0.0/15');
  const eps = new Set(s.flatMap((x) => x.endpoints));
  t.notOk(s.some((x) => eps.has(x.vip)), 'VIPs and endpoints do not overlap');
  t.throws(() => makeServices(0));
  t.throws(() => makeServices(40000));
});

t.test('chain hash is kube-proxy shaped: 16 base32 chars, stable', async (t) => {
  const h = chainHash('ns/svc:p80', 'udp');
  t.match(h, /^[A-Z2-7]{16}$/);
  t.equal(h, chainHash('ns/svc:p80', 'udp'));
  t.not(h, chainHash('ns/svc:p80', 'tcp'));
});

t.test('iptables-restore text', async (t) => {
  const s = makeServices(3);
  const txt = iptablesRestore(s);
  const lines = txt.split('\n');
  t.equal(lines[0], '*nat');
  t.equal(lines.filter((l) => l.startsWith('-A KUBE-SERVICES ')).length, 3 + 1, 'one rule per service plus nodeports');
  t.equal(lines.filter((l) => /^:KUBE-SEP-/.test(l)).length, 24);
  const svc = svcChain(s[2]);
  const svcLines = lines.filter((l) => l.startsWith(`-A ${svc} `));
  t.equal(svcLines.length, 9, 'masq mark + 8 endpoint jumps');
  t.match(svcLines[0], /! -s 198\.18\.0\.0\/16 -j KUBE-MARK-MASQ$/);
  const probs = svcLines.slice(1).map((l) => /--probability (\S+)/.exec(l)?.[1]);
  t.same(probs, ['0.1250000000', '0.1428571429', '0.1666666667', '0.2000000000', '0.2500000000', '0.3333333333', '0.5000000000', undefined]);
  const sep = sepChain(s[2], s[2].endpoints[0]);
  t.ok(lines.includes(`-A ${sep} -m comment --comment ${s[2].name} -s ${s[2].endpoints[0]}/32 -j KUBE-MARK-MASQ`));
  t.ok(lines.some((l) => l.startsWith(`-A ${sep} `) && l.endsWith(`-j DNAT --to-destination ${s[2].endpoints[0]}:8080`)));
  t.match(txt, /-A KUBE-POSTROUTING -m comment --comment "[^"]+" -j MASQUERADE --random-fully/);
  t.match(txt, /-A KUBE-POSTROUTING -m mark ! --mark 0x4000\/0x4000 -j RETURN/);
  t.ok(txt.includes('-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000'));
  t.equal(lines.at(-2), 'COMMIT');
  const chg = iptablesEndpointChange(s[2], s[2].endpoints[0], '198.18.200.1');
  t.match(chg, /--to-destination 198\.18\.200\.1:8080/);
  t.match(chg, new RegExp(`-X ${sep}`));
});

t.test('nft text', async (t) => {
  const s = makeServices(2);
  const txt = nftRuleset(s);
  t.match(txt, /type ipv4_addr \. inet_proto \. inet_service : verdict/);
  t.match(txt, /198\.19\.0\.2 \. udp \. 80 : goto service-/);
  t.match(txt, /numgen random mod 8 vmap \{ 0 : goto endpoint-/);
  t.equal(txt.match(/dnat to /g)?.length, 16);
  t.match(nftEndpointChange(s[1], s[1].endpoints[3], '198.18.200.1'), /dnat to 198\.18\.200\.1:8080/);
});

t.test('kpbpf config', async (t) => {
  const s = makeServices(2);
  const c = kpbpfConfig(s, { interfaces: [{ name: 'veth0', mode: 'native', redirect: true }] });
  t.same(c.interfaces, [{ name: 'veth0', mode: 'native', redirect: true }]);
  t.same(c.conf, { buckets: 131072, timeout: 30 });
  t.same(c.vips[1], { prefix: '198.19.0.2/32', protocol: 'udp', port: 80, target_port: 8080, new_len: 1021, backends: s[1].endpoints });
});

t.test('node ports: the measured service gets 30000, the rules of both kube-proxy modes and kpbpf name them', async (t) => {
  const s = withNodePorts(makeServices(3));
  t.same(s.map((x) => x.nodePort), [30002, 30001, 30000]);
  t.equal(withNodePorts(makeServices(3000)).filter((x) => x.nodePort).length, 2768, 'as many as the node port range holds');
  const ipt = iptablesRestore(s).split('\n');
  t.ok(ipt.includes(`-A KUBE-NODEPORTS -m comment --comment ${s[2].name} -m udp -p udp --dport 30000 -j ${extChain(s[2])}`));
  t.ok(ipt.includes(`-A ${extChain(s[2])} -j ${svcChain(s[2])}`), 'external chain: masquerade mark, then the service');
  const nft = nftRuleset(s);
  t.match(nft, /udp \. 30000 : goto external-/);
  t.match(nft, /fib daddr type local ip daddr != 127\.0\.0\.0\/8 jump nodeports/);
  t.equal(kpbpfConfig(s).vips[2].node_port, 30000);
});

const root = process.getuid?.() === 0;
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

t.test('rulesets load into the kernel (in a private netns)', { skip: root ? false : 'needs root for ip netns' }, async (t) => {
  const ns = `kpbh4rs${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.teardown(() => {
    spawnSync('ip', ['netns', 'del', ns]);
  });
  const s = withNodePorts(makeServices(5));
  const run = (cmd: string[], input: string) => execFileSync('ip', ['netns', 'exec', ns, ...cmd], { input, stdio: ['pipe', 'pipe', 'pipe'] });
  for (const tool of ['iptables-legacy-restore', 'iptables-nft-restore']) {
    if (!have(tool)) {
      t.skip(skipUnlessCi(`${tool} not installed`), async () => {});
      continue;
    }
    t.doesNotThrow(() => run([tool], iptablesRestore(s)), `${tool} full`);
    t.doesNotThrow(() => run([tool, '--noflush'], iptablesEndpointChange(s[4], s[4].endpoints[0], '198.18.200.1')), `${tool} change`);
  }
  const save = execFileSync('ip', ['netns', 'exec', ns, 'iptables-legacy-save', '-t', 'nat']).toString();
  t.equal(save.match(/-j DNAT/g)?.length, 40);
  t.doesNotThrow(() => run(['nft', '-f', '-'], nftRuleset(s)), 'nft full');
  t.doesNotThrow(() => run(['nft', '-f', '-'], nftEndpointChange(s[4], s[4].endpoints[0], '198.18.200.1')), 'nft change');
  const list = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'ip', 'kube-proxy']).toString();
  t.equal(list.match(/dnat to/g)?.length, 40);
  t.match(list, /dnat to 198\.18\.200\.1:8080/);
});
