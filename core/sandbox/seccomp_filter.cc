// Builds the sandbox's seccomp BPF with libseccomp; see seccomp_filter.h.
#include "core/sandbox/seccomp_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace grpo::sandbox {
namespace {

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};

// Syscalls killed outright. Names unknown to this libseccomp/arch are skipped.
constexpr const char* kKilled[] = {
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount", "umount2", "pivot_root",
    "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
    "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "acct", "quotactl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "name_to_handle_at",
    "open_by_handle_at", "lookup_dcookie", "vhangup", "iopl", "ioperm", "nfsservctl",
    "pidfd_getfd", "fanotify_init", "sethostname", "setdomainname", "create_module", "uselib"};

// personality(0xffffffff) only queries; any other call changes the execution domain
// (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) and is denied.
constexpr unsigned kPersonalityQuery = 0xffffffffu;

}  // namespace

absl::StatusOr<std::string> BuildSeccompBpf() {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return absl::InternalError("seccomp_init failed");
  scmp_filter_ctx c = ctx.get();
  auto fail = [](const char* what, int rc) {
    return absl::InternalError(absl::StrCat("seccomp: ", what, ": ", std::strerror(-rc)));
  };
  int rc;
  for (const char* name : kKilled) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if ((rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, nr, 0)) < 0) return fail(name, rc);
  }
  // Namespaces only through bwrap: clone with any CLONE_NEW* flag is killed.
  const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                            CLONE_NEWCGROUP;
  for (uint64_t flag = 1; flag; flag <<= 1) {
    if (!(ns_flags & flag)) continue;
    if ((rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag))) < 0)
      return fail("clone", rc);
  }
  int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR && (rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), clone3, 0)) < 0)
    return fail("clone3", rc);
  // Only AF_UNIX sockets (no network exists in the net namespace anyway; this also blocks
  // AF_NETLINK, AF_PACKET, AF_VSOCK and the rest of the kernel's socket attack surface).
  for (const char* name : {"socket", "socketpair"}) {
    int nr = seccomp_syscall_resolve_name(name);
    if ((rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, nr, 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX))) < 0)
      return fail(name, rc);
  }
  // No file locks and no inotify. Both act on inodes, and the system files every run
  // reads (the interpreter, libraries) are the same inodes for concurrent runs: a lock
  // one run takes, or an open another run's watch reports, is a channel between runs.
  // They fail with an errno (programs that try a lock can go on without it).
  for (const char* name : {"flock", "inotify_init", "inotify_init1", "inotify_add_watch"}) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if ((rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(name[0] == 'f' ? ENOLCK : ENOSYS), nr, 0)) < 0) return fail(name, rc);
  }
  for (int cmd : {F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_GETLEASE, F_SETLEASE}) {
    if ((rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOLCK), SCMP_SYS(fcntl), 1, SCMP_A1_32(SCMP_CMP_EQ, cmd))) < 0)
      return fail("fcntl", rc);
  }
  if ((rc = seccomp_rule_add(c, SCMP_ACT_KILL_PROCESS, SCMP_SYS(personality), 1,
                             SCMP_A0_32(SCMP_CMP_NE, kPersonalityQuery))) < 0)
    return fail("personality", rc);

  // Export through a memfd (seccomp_export_bpf writes to an fd) and read the bytes back.
  int fd = memfd_create("grpo-seccomp", MFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  rc = seccomp_export_bpf(c, fd);
  if (rc < 0) {
    ::close(fd);
    return fail("export", rc);
  }
  off_t size = ::lseek(fd, 0, SEEK_END);
  std::string bpf(static_cast<size_t>(size > 0 ? size : 0), '\0');
  ssize_t got = ::pread(fd, bpf.data(), bpf.size(), 0);
  ::close(fd);
  if (size <= 0 || got != size) return absl::InternalError("seccomp: cannot read back the exported BPF");
  return bpf;
}

}  // namespace grpo::sandbox
