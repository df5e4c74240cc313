// The quick-start demo: a client, a node running kpbpf and three backends in network namespaces, real
// HTTP and UDP traffic through a ClusterIP VIP and its IPv6 twin (a dual-stack service), then
// `kpbpf show stats`. Cleans up after itself, and
// before itself if an earlier run was killed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology, type Topology } from '../testbed/topology.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const KPBPF = resolve(root, 'bin/kpbpf.js');
const TAG = 'dd0001';
const BPFFS = '/run/kpbpf-demo';
const CONFIG = '/run/kpbpf-demo-config.json';
const VIP = '198.18.100.10';
const VIP6 = '2001:db8:100::10';

/** The embedded default: one TCP and one UDP service on a dual-stack ClusterIP, three pods each. */
function demoConfig(topo: Topology) {
  const pods = topo.backends.map((b) => b.addr);
  const pods6 = topo.backends.map((b) => b.addr6!);
  return {
    conf: { buckets: 131072, timeouts: { tcp_established: 86400, udp: 30 } },
    interfaces: topo.nodeIfs().map((name) => ({ name, mode: 'native', redirect: true })),
    vips: [
      { prefix: `${VIP}/32`, protocol: 'tcp', port: 80, target_port: 8080, new_len: 1021, backends: pods },
      { prefix: `${VIP}/32`, protocol: 'udp', port: 53, target_port: 5353, new_len: 1021, backends: pods },
      { prefix: `${VIP6}/128`, protocol: 'tcp', port: 80, target_port: 8080, new_len: 1021, backends: pods6 },
      { prefix: `${VIP6}/128`, protocol: 'udp', port: 53, target_port: 5353, new_len: 1021, backends: pods6 },
    ],
  };
}

const say = (s: string) => process.stdout.write(`\n== ${s}\n`);

function cleanupLeftovers(): void {
  for (const role of ['cl', 'nd', 'b1', 'b2', 'b3']) {
    try {
      execFileSync('ip', ['netns', 'del', `kp${TAG}-${role}`], { stdio: 'ignore' });
    } catch {
      // not there
    }
  }
  try {
    execFileSync('umount', [BPFFS], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
}

async function demo(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo needs root (network namespaces, XDP, bpffs)');
  cleanupLeftovers();
  mkdirSync(BPFFS, { recursive: true });
  execFileSync('mount', ['-t', 'bpf', 'bpf', BPFFS]);
  const topo = createTopology({ backends: 3, tag: TAG, ipv6: true });
  const kp = (...args: string[]) => {
    process.stdout.write(`$ kpbpf ${args.join(' ')}\n`);
    const out = execFileSync('ip', ['netns', 'exec', topo.node.ns, process.execPath, KPBPF, '--bpffs', BPFFS, ...args], { encoding: 'utf8' });
    process.stdout.write(out);
    return out;
  };
  try {
    say(`topology: client ${topo.client.addr} ${topo.client.addr6} -> node (${topo.nodeIfs().join(', ')}) -> pods ${topo.backends.map((b) => `${b.addr} ${b.addr6}`).join(', ')}`);
    await Promise.all(topo.backends.map((b) => topo.startServers(b)));
    say('apply the embedded config (attaches XDP to the node interfaces)');
    writeFileSync(CONFIG, JSON.stringify(demoConfig(topo), null, 2));
    kp('apply', '-f', CONFIG);
    kp('show', 'backends');

    const client = (mode: string, vip: string, port: number, count: number) => {
      const out = topo.exec(topo.client.ns, [process.execPath, resolve(root, 'dist/testbed/client.js'), mode, '--vip', vip, '--port', String(port), '--count', String(count)]);
      return JSON.parse(out.trim().split('\n').pop()!);
    };
    let failed = 0;
    for (const vip of [VIP, VIP6]) {
      say(`100 HTTP connections from the client to ${vip} port 80`);
      const http = client('http', vip, 80, 100);
      process.stdout.write(`completed ${http.ok}/100, replies from ${http.remotes.join(', ')}, per pod: ${JSON.stringify(http.backends)}\n`);
      say(`50 UDP datagrams from the client to ${vip} port 53`);
      const udp = client('udp', vip, 53, 50);
      process.stdout.write(`answered ${udp.ok}/50, replies from ${udp.remotes.join(', ')}, per pod: ${JSON.stringify(udp.backends)}\n`);
      failed += 100 - http.ok + (50 - udp.ok);
    }

    say('counters');
    kp('show', 'stats');
    if (failed) throw new Error(`${failed} requests through the VIPs failed`);
    say('demo OK: requests balanced over the pods through the IPv4 and the IPv6 VIP');
  } finally {
    try {
      execFileSync('ip', ['netns', 'exec', topo.node.ns, process.execPath, KPBPF, '--bpffs', BPFFS, 'detach', '--purge'], { stdio: 'ignore' });
    } catch {
      // deleting the namespaces detaches anyway
    }
    topo.destroy();
    cleanupLeftovers();
    if (existsSync(BPFFS)) rmdirSync(BPFFS);
    rmSync(CONFIG, { force: true });
  }
}

demo().catch((e) => {
  process.stderr.write(`demo failed: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
