// koffi bindings to libbpf.so.1 (v1.1) and the few libc calls the loader needs.
// int functions return -errno; pointer functions return NULL (0n) and set errno.
import koffi, { type TypeObject } from 'koffi';
import { bpfError } from '../errors.js';

const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

/** Opaque libbpf handles are plain pointers (BigInt in koffi 3, null for NULL). */
export type Ptr = bigint | null;

// Option structs mirror <bpf/libbpf.h> and <bpf/bpf.h> of libbpf 1.1; `sz` is set by the helpers below.
// Pointer fields are addresses (koffi.address of a live Buffer) so libbpf may keep them until load.
export const OpenOpts = koffi.struct('bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'uint64_t',
  relaxed_maps: 'bool',
  pin_root_path: 'uint64_t',
  _attach_prog_fd: 'uint32_t',
  kconfig: 'uint64_t',
  btf_custom_path: 'uint64_t',
  kernel_log_buf: 'uint64_t',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
});

export const MapCreateOpts = koffi.struct('bpf_map_create_opts', {
  sz: 'size_t',
  btf_fd: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  inner_map_fd: 'uint32_t',
  map_flags: 'uint32_t',
  map_extra: 'uint64_t',
  numa_node: 'uint32_t',
  map_ifindex: 'uint32_t',
});

export const BatchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

// Only the fields XDP uses; the union tail is padding up to libbpf 1.1's size (64).
export const LinkCreateOpts = koffi.struct('bpf_link_create_opts', {
  sz: 'size_t',
  flags: 'uint32_t',
  iter_info: 'uint64_t',
  iter_info_len: 'uint32_t',
  target_btf_id: 'uint32_t',
  _union: koffi.array('uint64_t', 4),
});

export const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'uint64_t',
  data_out: 'uint64_t',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'uint64_t',
  ctx_out: 'uint64_t',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

for (const [t, size] of [
  [OpenOpts, 80],
  [MapCreateOpts, 48],
  [BatchOpts, 24],
  [LinkCreateOpts, 64],
  [TestRunOpts, 80],
] as const) {
  if (koffi.sizeof(t) !== size) throw new Error(`${t.name}: koffi size ${koffi.sizeof(t)} != libbpf 1.1 size ${size}`);
}

/** An option object with its `sz` field filled in. */
export function opts<T extends object>(type: TypeObject, fields: T): T & { sz: number } {
  return { ...fields, sz: koffi.sizeof(type) };
}

export const addressOf = (b: Buffer): bigint => koffi.address(b);

export const lb = {
  bpf_object__open_file: lib.func('void *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)'),
  bpf_object__load: lib.func('int bpf_object__load(void *obj)'),
  bpf_object__close: lib.func('void bpf_object__close(void *obj)'),
  bpf_object__find_map_by_name: lib.func('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
  bpf_object__next_map: lib.func('void *bpf_object__next_map(void *obj, void *map)'),
  bpf_object__find_program_by_name: lib.func('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
  bpf_object__next_program: lib.func('void *bpf_object__next_program(void *obj, void *prog)'),
  bpf_program__set_autoload: lib.func('int bpf_program__set_autoload(void *prog, bool autoload)'),
  bpf_map__name: lib.func('const char *bpf_map__name(void *map)'),
  bpf_map__type: lib.func('int bpf_map__type(void *map)'),
  bpf_map__key_size: lib.func('uint32_t bpf_map__key_size(void *map)'),
  bpf_map__value_size: lib.func('uint32_t bpf_map__value_size(void *map)'),
  bpf_map__max_entries: lib.func('uint32_t bpf_map__max_entries(void *map)'),
  bpf_map__map_flags: lib.func('uint32_t bpf_map__map_flags(void *map)'),
  bpf_map__set_max_entries: lib.func('int bpf_map__set_max_entries(void *map, uint32_t max)'),
  bpf_map__fd: lib.func('int bpf_map__fd(void *map)'),
  bpf_map__set_pin_path: lib.func('int bpf_map__set_pin_path(void *map, const char *path)'),
  bpf_map__reuse_fd: lib.func('int bpf_map__reuse_fd(void *map, int fd)'),
  bpf_map__is_internal: lib.func('bool bpf_map__is_internal(void *map)'),
  bpf_program__fd: lib.func('int bpf_program__fd(void *prog)'),
  bpf_program__name: lib.func('const char *bpf_program__name(void *prog)'),
  bpf_map_create: lib.func(
    'int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const bpf_map_create_opts *opts)',
  ),
  bpf_map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  bpf_map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  bpf_map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  bpf_map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  bpf_map_lookup_batch: lib.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const bpf_map_batch_opts *opts)',
  ),
  bpf_map_update_batch: lib.func(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const bpf_map_batch_opts *opts)',
  ),
  bpf_map_get_fd_by_id: lib.func('int bpf_map_get_fd_by_id(uint32_t id)'),
  bpf_prog_get_fd_by_id: lib.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
  bpf_obj_pin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
  bpf_obj_get: lib.func('int bpf_obj_get(const char *path)'),
  bpf_obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
  bpf_link_create: lib.func(
    'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const bpf_link_create_opts *opts)',
  ),
  bpf_link_detach: lib.func('int bpf_link_detach(int link_fd)'),
  bpf_link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
  bpf_prog_test_run_opts: lib.func('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
  libbpf_num_possible_cpus: lib.func('int libbpf_num_possible_cpus(void)'),
  libbpf_get_error: lib.func('long libbpf_get_error(void *ptr)'),
  libbpf_set_print: lib.func('void *libbpf_set_print(void *fn)'),
};

export const libcFns = {
  close: libc.func('int close(int fd)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, ...)'),
  if_nametoindex: libc.func('uint32_t if_nametoindex(const char *name)'),
  if_indextoname: libc.func('void *if_indextoname(uint32_t index, void *buf)'),
  mount: libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  open: libc.func('int open(const char *path, int flags)'),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  malloc_trim: libc.func('int malloc_trim(size_t pad)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
};

// Constants from <linux/bpf.h> and <linux/if_link.h>.
export const BPF_MAP_TYPE = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  DEVMAP_HASH: 25,
} as const;
export const PERCPU_MAP_TYPES: readonly number[] = [
  BPF_MAP_TYPE.PERCPU_HASH,
  BPF_MAP_TYPE.PERCPU_ARRAY,
  BPF_MAP_TYPE.LRU_PERCPU_HASH,
];
export const BPF_F_NO_PREALLOC = 0x1;
export const BPF_F_INNER_MAP = 0x1000;
export const BPF_F_MMAPABLE = 0x400;
// <sys/mman.h>
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_FAILED = 0xffffffffffffffffn;
export const BPF_F_RDONLY_PROG = 0x80;
export const BPF_ANY = 0n;
export const BPF_NOEXIST = 1n;
export const BPF_EXIST = 2n;
export const BPF_XDP = 37;
export const XDP_FLAGS_SKB_MODE = 2;
export const XDP_FLAGS_DRV_MODE = 4;
export const ENOENT = 2;
export const F_DUPFD_CLOEXEC = 1030;

/** Throw a KpError for a negative libbpf return; pass non-negative values through. */
export function check(op: string, ret: number, what = ''): number {
  if (ret < 0) throw bpfError(op, ret, what);
  return ret;
}

/** Pointer-returning libbpf calls: NULL or an ERR_PTR-style value is an error. */
export function checkPtr(op: string, p: Ptr, what = ''): bigint {
  const errno = koffi.errno();
  const err = Number(lb.libbpf_get_error(p));
  if (p === null || err !== 0) throw bpfError(op, err !== 0 ? err : -(errno || 22), what);
  return p;
}

export function closeFd(fd: number): void {
  if (fd >= 0) libcFns.close(fd);
}

/** `f` of an fd of the object pinned at path, closed after. */
export function withPinnedFd<T>(path: string, f: (fd: number) => T): T {
  const fd = check('bpf_obj_get', lb.bpf_obj_get(path), path);
  try {
    return f(fd);
  } finally {
    closeFd(fd);
  }
}

/** open(path, O_RDONLY | O_CLOEXEC): a directory fd to attach to (a cgroup). */
export function openFd(path: string): number {
  const O_CLOEXEC = 0o2000000;
  const r = libcFns.open(path, O_CLOEXEC) as number;
  return check('open', r < 0 ? -koffi.errno() : r, path);
}

/** A close-on-exec duplicate, so an fd can outlive the libbpf object that owns the original. */
export function dupFd(fd: number): number {
  const r = libcFns.fcntl(fd, F_DUPFD_CLOEXEC, 'int', 3) as number;
  return check('fcntl(F_DUPFD_CLOEXEC)', r < 0 ? -koffi.errno() : r);
}

let cpus = 0;
export function numPossibleCpus(): number {
  if (cpus === 0) cpus = check('libbpf_num_possible_cpus', lb.libbpf_num_possible_cpus());
  return cpus;
}

/** libbpf prints warnings to stderr; keep them only when KPBPF_DEBUG is set (errors carry the log). */
if (!process.env.KPBPF_DEBUG) lb.libbpf_set_print(null);

export function ifNameToIndex(name: string): number {
  return libcFns.if_nametoindex(name) as number;
}

export function ifIndexToName(index: number): string | undefined {
  const buf = Buffer.alloc(16);
  const r = libcFns.if_indextoname(index, buf);
  if (r === null) return undefined;
  return buf.subarray(0, buf.indexOf(0)).toString();
}
