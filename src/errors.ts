// One error class for the whole control plane, with a stable code a caller can switch on.
import { getSystemErrorName } from 'node:util';

export type KpErrorCode =
  | 'KP_ERR_BPF' // a bpf syscall or libbpf call failed
  | 'KP_ERR_VERIFIER' // the kernel rejected the program; `log` holds the verifier log
  | 'KP_ERR_CONFIG' // a config file or value is invalid; nothing was applied
  | 'KP_ERR_ARG' // a CLI argument is invalid
  | 'KP_ERR_STATE' // the data plane is not in a state that allows the operation
  | 'KP_ERR_NET'; // netlink/interface trouble

export class KpError extends Error {
  readonly code: KpErrorCode;
  readonly op?: string;
  readonly errno?: number;
  readonly errnoName?: string;
  readonly log?: string;
  readonly details?: string[];

  constructor(
    code: KpErrorCode,
    message: string,
    extra: { op?: string; errno?: number; log?: string; details?: string[] } = {},
  ) {
    super(message);
    this.name = 'KpError';
    this.code = code;
    this.op = extra.op;
    this.log = extra.log;
    this.details = extra.details;
    if (extra.errno !== undefined) {
      this.errno = Math.abs(extra.errno);
      try {
        this.errnoName = getSystemErrorName(-this.errno);
      } catch {
        this.errnoName = `errno ${this.errno}`;
      }
    }
  }
}

/** libbpf int functions return -errno; wrap the failure with the operation's name. */
export function bpfError(op: string, ret: number, what = ''): KpError {
  const err = new KpError('KP_ERR_BPF', '', { op, errno: ret });
  err.message = `${op}${what ? ` (${what})` : ''} failed: ${err.errnoName}`;
  return err;
}
