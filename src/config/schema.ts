// JSON Schema (draft-07, ajv) of the config file. Checks ajv cannot express (prime new_len,
// address syntax, duplicates, address families) live in validate.ts.
import { KP_MAGLEV_MAX_LEN, KP_MAGLEV_MIN_LEN } from '../maglev/primes.js';
import { KP_TIMEOUT_MAX, TIMEOUT_NAMES } from './timeouts.js';
import { KP_BUCKETS_MAX, KP_BUCKETS_MIN, KP_HASH_SEED_MAX, KP_IFNAME_MAX, KP_WEIGHT_MAX } from './types.js';

const IFNAME_PATTERN = '^[^/:\\s]*$';
const NODEPORT_RANGE_PATTERN = '^[0-9]{1,5}-[0-9]{1,5}$';
/** What each pattern means, for error messages. */
export const PATTERN_TEXT: Record<string, string> = {
  [IFNAME_PATTERN]: "must not contain '/', ':' or whitespace",
  [NODEPORT_RANGE_PATTERN]: 'must be MIN-MAX, e.g. 30000-32767',
};

const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const seconds = { type: 'integer', minimum: 1, maximum: KP_TIMEOUT_MAX } as const;

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://kpbpf.invalid/config.schema.json',
  title: 'kpbpf config',
  type: 'object',
  additionalProperties: false,
  properties: {
    conf: {
      type: 'object',
      additionalProperties: false,
      properties: {
        buckets: { type: 'integer', minimum: KP_BUCKETS_MIN, maximum: KP_BUCKETS_MAX },
        hash_seed: { type: 'integer', minimum: 0, maximum: KP_HASH_SEED_MAX },
        nodeport_range: { type: 'string', pattern: NODEPORT_RANGE_PATTERN },
        nodeport_addresses: { type: 'array', maxItems: 16, items: { type: 'string', minLength: 1 } },
        masquerade_address: { type: 'string', minLength: 1 }, // an IPv4 address or "none" (validate.ts)
        masquerade_address6: { type: 'string', minLength: 1 }, // an IPv6 address or "none" (validate.ts)
        masquerade_ports: { type: 'string', pattern: NODEPORT_RANGE_PATTERN }, // MIN-MAX (validate.ts)
        nat46_prefix: { type: 'string', minLength: 1 }, // an IPv6 /96 (validate.ts)
        // VPP's `timeout`: the same as timeouts.udp.
        timeout: seconds,
        timeouts: {
          type: 'object',
          additionalProperties: false,
          properties: Object.fromEntries(TIMEOUT_NAMES.map((n) => [n, seconds])),
        },
      },
    },
    interfaces: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          // Linux dev_valid_name: no '/', ':' or whitespace.
          name: { type: 'string', minLength: 1, maxLength: KP_IFNAME_MAX, pattern: IFNAME_PATTERN },
          mode: { enum: ['native', 'generic', 'auto'] },
          redirect: { type: 'boolean' },
        },
      },
    },
    vips: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['prefix', 'port'],
        properties: {
          prefix: { type: 'string', minLength: 1 },
          protocol: { enum: ['tcp', 'udp'] },
          port,
          target_port: port,
          node_port: port, // and within conf.nodeport_range (validate.ts)
          type: { enum: ['clusterip', 'nodeport', 'loadbalancer', 'externalip'] },
          // The seed's nat4|nat6 (the backends' family) and kpbpf's nat44|nat46|nat64|nat66.
          encap: { enum: ['nat4', 'nat6', 'nat44', 'nat46', 'nat64', 'nat66'] },
          source_ranges: { type: 'array', items: { type: 'string', minLength: 1 } },
          external_traffic_policy: { enum: ['cluster', 'local'] },
          internal_traffic_policy: { enum: ['cluster', 'local'] },
          // Kubernetes' sessionAffinity and sessionAffinityConfig.clientIP.timeoutSeconds.
          session_affinity: { enum: ['ClientIP', 'None', 'clientip', 'none'] },
          session_affinity_timeout: { type: 'integer', minimum: 1, maximum: 86400 },
          // kube-proxy's healthCheckNodePort: answered by kpbpf run (validate.ts: local policy only).
          health_check_node_port: port,
          name: { type: 'string', minLength: 1, maxLength: 253 },
          new_len: { type: 'integer', minimum: KP_MAGLEV_MIN_LEN, maximum: KP_MAGLEV_MAX_LEN },
          backends: {
            type: 'array',
            // An address string or {address, weight}; one union schema keeps ajv's errors
            // to the field that is wrong (oneOf would report both branches).
            items: {
              type: ['string', 'object'],
              minLength: 1,
              additionalProperties: false,
              required: ['address'],
              properties: {
                address: { type: 'string', minLength: 1 },
                weight: { type: 'integer', minimum: 1, maximum: KP_WEIGHT_MAX },
                local: { type: 'boolean' },
                terminating: { type: 'boolean' },
              },
            },
          },
        },
      },
    },
  },
} as const;
