// Masquerade settings (conf masquerade_address, masquerade_ports): one parser for the CLI and the
// JSON config, so both accept and refuse the same values with the same words.
import { parseAddress } from './address.js';

/** Masqueraded connections take their source port from here: above the privileged ports, below the
 * node port range (30000-32767) and Linux's ephemeral range (32768-60999), where the node's own
 * sockets never get a port to connect from. 28,976 ports per (masquerade address, backend). */
export const KP_MASQ_PORT_MIN = 1024;
export const KP_MASQ_PORT_MAX = 29999;
/** Ports below this are services' own. */
const LOWEST_MASQ_PORT = 1024;

/** `none`, or an address of the family (canonical text): masquerade_address takes IPv4,
 * masquerade_address6 IPv6. An error message otherwise. */
export function parseMasqAddress(text: string, family: 4 | 6 = 4): string | { error: string } {
  if (text === 'none') return 'none';
  const a = parseAddress(text);
  if (typeof a === 'string') return { error: `expected an IPv${family} address or none: ${a}` };
  if (a.family !== family) {
    return { error: `expected an IPv${family} address or none, got the IPv${a.family} address '${text}'${family === 4 ? ' (IPv6: masquerade_address6)' : ' (IPv4: masquerade_address)'}` };
  }
  return a.text;
}

/** RFC 6052's well-known prefix: NAT46 sources when none is set. */
export const NAT46_PREFIX_DEFAULT = '64:ff9b::/96';

/** A NAT46 prefix: an IPv6 /96 (canonical text) a client's IPv4 address is embedded in. */
export function parseNat46Prefix(text: string): string | { error: string } {
  const [addr, len, more] = text.split('/');
  if (more !== undefined || len !== '96') return { error: `expected an IPv6 /96 prefix (RFC 6052, e.g. ${NAT46_PREFIX_DEFAULT}), got '${text}'` };
  const a = parseAddress(addr);
  if (typeof a === 'string' || a.family !== 6) return { error: `expected an IPv6 /96 prefix (RFC 6052, e.g. ${NAT46_PREFIX_DEFAULT}), got '${text}'` };
  if (a.bytes.subarray(12).some((b) => b !== 0)) return { error: `${text}: the last 32 bits of a /96 prefix are the client's IPv4 address, so they must be 0` };
  if (a.bytes.subarray(0, 12).every((b) => b === 0)) return { error: `${text}: ::/96 cannot be a NAT46 prefix (it is all zero)` };
  return `${a.text}/96`;
}

const overlaps = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];

/**
 * MIN-MAX within 1024-65535 and clear of the node port range and of the node's own ephemeral
 * range (ip_local_port_range, when known): a masqueraded reply must never be taken for a reply to
 * a socket of the node's, nor a node port. Returns the range or an error message.
 */
export function parseMasqPorts(text: string, nodePorts: [number, number], localPorts?: [number, number]): [number, number] | { error: string } {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text);
  const r: [number, number] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || r[0] < LOWEST_MASQ_PORT || r[1] > 65535 || r[0] > r[1]) {
    return { error: `expected MIN-MAX with ${LOWEST_MASQ_PORT} <= MIN <= MAX <= 65535 (e.g. ${KP_MASQ_PORT_MIN}-${KP_MASQ_PORT_MAX}), got '${text}'` };
  }
  if (overlaps(r, nodePorts)) return { error: `${text} overlaps the node port range ${nodePorts.join('-')}` };
  if (localPorts && overlaps(r, localPorts)) {
    return { error: `${text} overlaps the node's ephemeral ports ${localPorts.join('-')} (net.ipv4.ip_local_port_range), which its own connections use` };
  }
  return r;
}
