// The node's own addresses, where node ports are served (kube-proxy's default for
// --nodeport-addresses: every address of the node). Loopback is left out: XDP never sees it.
import { networkInterfaces } from 'node:os';

export function nodeIpv4Addresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return [...new Set(out)].sort();
}
