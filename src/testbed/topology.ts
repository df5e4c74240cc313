// A client / node / backends topology in network namespaces, for the demo and end-to-end tests.
// Addresses come from 198.18.0.0/15 (and, with ipv6, 2001:db8::/32) only. Everything made here is
// removed by destroy().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The compiled backend servers, found from src/testbed or dist/testbed alike. */
const SERVERS = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/testbed/servers.js');

export interface Backend {
  ns: string;
  name: string;
  addr: string; // backend's address, e.g. 198.18.1.2
  addr6?: string; // with ipv6: its IPv6 address, e.g. 2001:db8:1::2
  nodeIf: string; // node-side veth, e.g. n1
}

export interface Topology {
  tag: string;
  client: { ns: string; addr: string; addr6?: string };
  node: { ns: string; clientIf: string; addr: string; addr6?: string };
  backends: Backend[];
  /** Node interfaces XDP should be attached to: the client side and every backend side. */
  nodeIfs(): string[];
  exec(ns: string, cmd: string[], opts?: { input?: string; allowFail?: boolean }): string;
  spawn(ns: string, cmd: string[]): ChildProcess;
  addBackend(name: string): Backend;
  /** Start the HTTP (8080) and UDP echo (5353) servers in a backend and wait until they listen. */
  /** The test servers in b's namespace: TCP (HTTP) and UDP echo on the given ports (8080, 5353). */
  startServers(b: Backend, ports?: { tcp: number; udp: number }): Promise<void>;
  destroy(): void;
}

export const VIP_SUBNET = '198.18.100.0/24';
/** With ipv6: the client routes 2001:db8::/32 through the node; VIPs go in 2001:db8:100::/48. */
export const VIP6_SUBNET = '2001:db8:100::/48';

function sh(cmd: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd[0], cmd.slice(1), { input: opts.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    if (opts.allowFail) return '';
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd.join(' ')}: ${err.stderr?.trim() || err.message}`);
  }
}

/** Namespaces are named kp<tag>-<role>; a short random tag keeps parallel runs apart. */
export function createTopology(opts: { backends?: number; tag?: string; ipv6?: boolean; gro?: boolean } = {}): Topology {
  const tag = opts.tag ?? randomBytes(3).toString('hex');
  const made: string[] = [];
  const children: ChildProcess[] = [];
  const nsName = (role: string) => `kp${tag}-${role}`;
  const exec = (ns: string, cmd: string[], o?: { input?: string; allowFail?: boolean }) =>
    sh(['ip', 'netns', 'exec', ns, ...cmd], o);
  const addNs = (ns: string) => {
    sh(['ip', 'netns', 'add', ns]);
    made.push(ns);
    exec(ns, ['ip', 'link', 'set', 'lo', 'up']);
  };

  // XDP_REDIRECT into a veth needs GRO (or XDP) on the receiving peer. TX checksum offload stays on,
  // as in a pod: the node sees CHECKSUM_PARTIAL frames, which the data plane must handle.
  // gro: false leaves the peers as a veth comes (GRO off): the layout a plain attach must serve too.
  const enableGro = (ns: string) => {
    if (opts.gro !== false) exec(ns, ['ethtool', '-K', 'eth0', 'gro', 'on'], { allowFail: true });
  };

  const v6 = opts.ipv6 === true;
  const client = { ns: nsName('cl'), addr: '198.18.0.2', ...(v6 ? { addr6: '2001:db8::2' } : {}) };
  const node = { ns: nsName('nd'), clientIf: 'n0', addr: '198.18.0.1', ...(v6 ? { addr6: '2001:db8::1' } : {}) };
  // nodad: an address is usable at once (duplicate address detection would hold it for a second).
  const addAddr6 = (ns: string, addr: string, dev: string) => exec(ns, ['ip', '-6', 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad']);
  const backends: Backend[] = [];

  const topo: Topology = {
    tag,
    client,
    node,
    backends,
    nodeIfs: () => [node.clientIf, ...backends.map((b) => b.nodeIf)],
    exec,
    spawn(ns, cmd) {
      const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
    addBackend(name) {
      const i = backends.length + 1;
      if (i > 200) throw new Error('too many backends');
      const ns = nsName(name);
      addNs(ns);
      const nodeIf = `n${i}`;
      exec(node.ns, ['ip', 'link', 'add', nodeIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      exec(node.ns, ['ip', 'addr', 'add', `198.18.${i}.1/24`, 'dev', nodeIf]);
      exec(node.ns, ['ip', 'link', 'set', nodeIf, 'up']);
      exec(ns, ['ip', 'addr', 'add', `198.18.${i}.2/24`, 'dev', 'eth0']);
      exec(ns, ['ip', 'link', 'set', 'eth0', 'up']);
      exec(ns, ['ip', 'route', 'add', 'default', 'via', `198.18.${i}.1`]);
      const net6 = `2001:db8:${i.toString(16)}::`;
      if (v6) {
        addAddr6(node.ns, `${net6}1`, nodeIf);
        addAddr6(ns, `${net6}2`, 'eth0');
        exec(ns, ['ip', '-6', 'route', 'add', 'default', 'via', `${net6}1`]);
      }
      enableGro(ns);
      const b = { ns, name, addr: `198.18.${i}.2`, nodeIf, ...(v6 ? { addr6: `${net6}2` } : {}) };
      backends.push(b);
      return b;
    },
    startServers(b, ports = { tcp: 8080, udp: 5353 }) {
      // With ipv6 the UDP socket is dual-stack (udp6 on ::), as the HTTP server always is.
      const child = topo.spawn(b.ns, [process.execPath, SERVERS, '--name', b.name, '--tcp', String(ports.tcp), '--udp', String(ports.udp), ...(v6 ? ['--udp6'] : [])]);
      return new Promise<void>((ok, fail) => {
        let seen = '';
        const timer = setTimeout(() => fail(new Error(`servers in ${b.ns} did not start: ${seen}`)), 10_000);
        child.stdout!.on('data', (d) => {
          seen += d;
          if (seen.includes(`tcp ${ports.tcp} ready`) && seen.includes(`udp ${ports.udp} ready`)) {
            clearTimeout(timer);
            ok();
          }
        });
        child.on('exit', (code) => {
          clearTimeout(timer);
          fail(new Error(`servers in ${b.ns} exited with ${code}: ${seen}`));
        });
      });
    },
    destroy() {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      for (const ns of made.reverse()) sh(['ip', 'netns', 'del', ns], { allowFail: true });
      made.length = 0;
    },
  };

  try {
    addNs(client.ns);
    addNs(node.ns);
    exec(node.ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (const k of ['all', 'default']) exec(node.ns, ['sysctl', '-qw', `net.ipv4.conf.${k}.rp_filter=0`]);
    exec(node.ns, ['ip', 'link', 'add', node.clientIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client.ns]);
    exec(node.ns, ['ip', 'addr', 'add', `${node.addr}/24`, 'dev', node.clientIf]);
    exec(node.ns, ['ip', 'link', 'set', node.clientIf, 'up']);
    exec(client.ns, ['ip', 'addr', 'add', `${client.addr}/24`, 'dev', 'eth0']);
    exec(client.ns, ['ip', 'link', 'set', 'eth0', 'up']);
    exec(client.ns, ['ip', 'route', 'add', VIP_SUBNET, 'via', node.addr]);
    exec(client.ns, ['ip', 'route', 'add', '198.18.0.0/15', 'via', node.addr]);
    if (v6) {
      for (const k of ['all', 'default']) exec(node.ns, ['sysctl', '-qw', `net.ipv6.conf.${k}.forwarding=1`]);
      addAddr6(node.ns, node.addr6!, node.clientIf);
      addAddr6(client.ns, client.addr6!, 'eth0');
      exec(client.ns, ['ip', '-6', 'route', 'add', '2001:db8::/32', 'via', node.addr6!]);
    }
    enableGro(client.ns);
    for (let i = 0; i < (opts.backends ?? 2); i++) topo.addBackend(`b${i + 1}`);
  } catch (e) {
    topo.destroy();
    throw e;
  }
  return topo;
}

/** Namespaces left by an earlier run that died (kp<tag>-<role>). */
export function leftoverNamespaces(): string[] {
  return sh(['ip', 'netns', 'list'], { allowFail: true })
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => /^kp[0-9a-f]{6}-/.test(n));
}
