// Facts of the host the data plane runs on, read from /proc.
import { readFileSync } from 'node:fs';

/** The node's ephemeral port range (net.ipv4.ip_local_port_range), or undefined if unreadable. */
export function localPortRange(): [number, number] | undefined {
  try {
    const [a, b] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return Number.isInteger(a) && Number.isInteger(b) ? [a, b] : undefined;
  } catch {
    return undefined;
  }
}
