// What a valid config may ask for that this kpbpf cannot do yet: refused before anything changes,
// with the field's path, rather than accepted and silently not forwarded. The parser itself stays
// family-agnostic; this list shrinks as the data path learns (IPv6: NAT66, NAT46, NAT64).
import type { KpConfig } from './types.js';

export const IPV6_VIP_UNSUPPORTED = 'IPv6 VIPs are not forwarded yet: kpbpf does NAT44 (IPv6 packets pass untouched; NAT66, NAT46 and NAT64 are to come)';

/** Errors as `PATH: message`, [] when this kpbpf can do all of it. */
export function unsupportedErrors(c: KpConfig): string[] {
  return c.vips.flatMap((v, i) => (v.family === 6 ? [`/vips/${i}/prefix: ${IPV6_VIP_UNSUPPORTED}`] : []));
}
