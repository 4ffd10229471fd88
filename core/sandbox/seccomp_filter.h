// The seccomp filter the sandboxed program runs under, compiled once to a classic BPF
// program (the format bwrap's --seccomp FD reads). Default allow; the listed system calls
// kill the whole process with SIGSYS, which the sandbox reports as status "denied":
//   ptrace, process_vm_readv/writev, mount, umount2, pivot_root, chroot, move_mount,
//   open_tree, fsopen/fsmount/fsconfig/fspick, unshare, setns, clone with any CLONE_NEW*
//   flag, keyctl, add_key, request_key, bpf, perf_event_open, kexec_load,
//   kexec_file_load, init_module, finit_module, delete_module, reboot, swapon, swapoff,
//   personality (anything but the query), , userfaultfd, io_uring_*, socket/socketpair for any family
//   but AF_UNIX, acct, quotactl, settimeofday/clock_settime/adjtimex, syslog,
//   name_to_handle_at/open_by_handle_at, lookup_dcookie, vhangup, iopl/ioperm.
// clone3 fails with ENOSYS instead (its flags live in memory BPF cannot read; libc then
// falls back to clone, whose flags are checked).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace grpo::sandbox {

// The filter as BPF bytes (struct sock_filter[]), for the native architecture.
absl::StatusOr<std::string> BuildSeccompBpf();

}  // namespace grpo::sandbox
