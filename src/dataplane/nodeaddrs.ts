// The node's own addresses, where node ports are served (kube-proxy's default for
// --nodeport-addresses: every address of the node). Loopback is left out: XDP never sees it.
import { networkInterfaces } from 'node:os';
import { addrToBytes, parsePrefix } from '../maps/addr.js';

/** The node's IPv4 and global IPv6 addresses. Link-local IPv6 (fe80::/10) is left out: it means
 * something on one link only, and kp_vips keys carry no interface. */
export function nodeAddressesOfHost(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv4') out.push(a.address);
      else if (a.family === 'IPv6' && !/^fe[89ab]/i.test(a.address)) out.push(a.address);
    }
  }
  return [...new Set(out)].sort();
}

/** Is addr in one of the prefixes ("addr/len" text)? */
export function inPrefixes(addr: string, prefixes: string[]): boolean {
  const a = addrToBytes(addr);
  return prefixes.some((text) => {
    const p = parsePrefix(text);
    for (let bit = 0; bit < p.len128; bit++) {
      const m = 0x80 >> (bit & 7);
      if ((a[bit >> 3] & m) !== (p.addr[bit >> 3] & m)) return false;
    }
    return true;
  });
}

