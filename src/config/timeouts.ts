// Connection timeouts per state: their names in the config and CLI, the kernel's defaults as
// kube-proxy runs conntrack, and their slots in kp_config.timeout_s (enum kp_ct_state).
import { CT_STATES, CT_TIMEOUT_SLOTS } from '../maps/codecs.js';

/** Config/CLI name → enum kp_ct_state name. */
export const TIMEOUT_STATES = {
  tcp_syn_sent: 'syn_sent',
  tcp_syn_recv: 'syn_recv',
  tcp_established: 'established',
  tcp_fin_wait: 'fin_wait',
  tcp_close_wait: 'close_wait',
  tcp_last_ack: 'last_ack',
  tcp_time_wait: 'time_wait',
  tcp_close: 'close',
  udp: 'udp',
  udp_stream: 'udp_stream',
} as const;
export type TimeoutName = keyof typeof TIMEOUT_STATES;
export type CtTimeouts = Record<TimeoutName, number>;
export const TIMEOUT_NAMES = Object.keys(TIMEOUT_STATES) as TimeoutName[];

/** kube-proxy sets established to 1 day and close_wait to 1 hour; the rest are the kernel's
 * nf_conntrack defaults. udp_stream is UDP that has seen a reply. */
export const DEFAULT_TIMEOUTS: Readonly<CtTimeouts> = {
  tcp_syn_sent: 120,
  tcp_syn_recv: 60,
  tcp_established: 86400,
  tcp_fin_wait: 120,
  tcp_close_wait: 3600,
  tcp_last_ack: 30,
  tcp_time_wait: 120,
  tcp_close: 10,
  udp: 30,
  udp_stream: 120,
};

/** The longest timeout accepted: 30 days. */
export const KP_TIMEOUT_MAX = 30 * 86400;

/** kp_config.timeout_s from named timeouts. */
export function timeoutSlots(t: CtTimeouts): number[] {
  const slots = new Array<number>(CT_TIMEOUT_SLOTS).fill(0);
  for (const name of TIMEOUT_NAMES) slots[CT_STATES.indexOf(TIMEOUT_STATES[name])] = t[name];
  return slots;
}

/** Named timeouts from kp_config.timeout_s. */
export function timeoutsFromSlots(slots: readonly number[]): CtTimeouts {
  const t = {} as CtTimeouts;
  for (const name of TIMEOUT_NAMES) t[name] = slots[CT_STATES.indexOf(TIMEOUT_STATES[name])] ?? 0;
  return t;
}

/** The timeout that applies to a record in state `state` (enum index); 0 = never expires. */
export function timeoutOfState(t: CtTimeouts, state: number): number {
  const name = TIMEOUT_NAMES.find((n) => TIMEOUT_STATES[n] === CT_STATES[state]);
  return name ? t[name] : 0;
}
