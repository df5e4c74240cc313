// A private network namespace for data-path runs whose forwarding decision must be real: a veth
// pair, routes to the backends and the clients, permanent neighbours, forwarding on. This thread
// joins it with setns (so ifindexes and the FIB are its own) and leaves it before deleting it.
import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import koffi from 'koffi';

const CLONE_NEWNET = 0x40000000;
let setnsFn: ((fd: number, nstype: number) => number) | undefined;

function setns(path: string | number): void {
  setnsFn ??= koffi.load('libc.so.6').func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
  const fd = typeof path === 'number' ? path : openSync(path, 'r');
  try {
    if (setnsFn(fd, CLONE_NEWNET) !== 0) throw new Error(`setns(${path}) failed`);
  } finally {
    if (typeof path !== 'number') closeSync(fd);
  }
}

export interface RoutedNetns {
  /** where client packets arrive (the program's ingress ifindex) */
  clientIf: number;
  /** where packets to backends leave */
  backendIf: number;
  backendGwMac: string;
  clientGwMac: string;
  leave(): void;
}

/** Creates namespace `name` routing `backendNet` out of one veth end and `clientNet` out of the other
 * (and, given `v6`, the IPv6 nets the same way, through IPv6 neighbours with the same MACs). */
export function enterRoutedNetns(name: string, backendNet: string, clientNet: string, v6?: { backendNet: string; clientNet: string }): RoutedNetns {
  const ip = (...a: string[]) => execFileSync('ip', ['-n', name, ...a], { encoding: 'utf8' });
  const home = openSync('/proc/self/ns/net', 'r');
  execFileSync('ip', ['netns', 'add', name]);
  try {
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'kbb', 'type', 'veth', 'peer', 'name', 'kbc');
    ip('addr', 'add', '198.19.254.1/30', 'dev', 'kbb');
    ip('addr', 'add', '198.19.254.5/30', 'dev', 'kbc');
    for (const d of ['kbb', 'kbc']) ip('link', 'set', d, 'up');
    const backendGwMac = '02:00:00:00:fe:02';
    const clientGwMac = '02:00:00:00:fe:06';
    ip('neigh', 'replace', '198.19.254.2', 'lladdr', backendGwMac, 'dev', 'kbb', 'nud', 'permanent');
    ip('neigh', 'replace', '198.19.254.6', 'lladdr', clientGwMac, 'dev', 'kbc', 'nud', 'permanent');
    ip('route', 'add', backendNet, 'via', '198.19.254.2', 'dev', 'kbb');
    ip('route', 'add', clientNet, 'via', '198.19.254.6', 'dev', 'kbc');
    execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.conf.all.forwarding=1']);
    if (v6) {
      ip('-6', 'addr', 'add', '2001:db8:fe::1/64', 'dev', 'kbb', 'nodad');
      ip('-6', 'addr', 'add', '2001:db8:fe:1::1/64', 'dev', 'kbc', 'nodad');
      ip('-6', 'neigh', 'replace', '2001:db8:fe::2', 'lladdr', backendGwMac, 'dev', 'kbb', 'nud', 'permanent');
      ip('-6', 'neigh', 'replace', '2001:db8:fe:1::2', 'lladdr', clientGwMac, 'dev', 'kbc', 'nud', 'permanent');
      ip('-6', 'route', 'add', v6.backendNet, 'via', '2001:db8:fe::2', 'dev', 'kbb');
      ip('-6', 'route', 'add', v6.clientNet, 'via', '2001:db8:fe:1::2', 'dev', 'kbc');
      execFileSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    }
    const idx = (d: string) => JSON.parse(ip('-j', 'link', 'show', d))[0].ifindex as number;
    const r = { clientIf: idx('kbc'), backendIf: idx('kbb'), backendGwMac, clientGwMac };
    setns(`/run/netns/${name}`);
    return {
      ...r,
      leave() {
        setns(home);
        closeSync(home);
        execFileSync('ip', ['netns', 'del', name]);
      },
    };
  } catch (e) {
    closeSync(home);
    execFileSync('ip', ['netns', 'del', name]);
    throw e;
  }
}
