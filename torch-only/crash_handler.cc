// Linked into the torch-only tests: a crash prints where it happened before the
// process dies, so a failure on a lent machine whose only output is a log can be read
// without a debugger. The unwinder's stack (function names, thanks to -rdynamic), and,
// since a jump to a bad address leaves the unwinder nothing to start from, the faulting
// instruction and the code addresses found on top of the stack (a call's return
// address among them), each with the symbol dladdr finds for it.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace {

void Say(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }

// "  <label> 0x...: symbol+off (object)" when dladdr knows the address; false otherwise.
bool Describe(const char* label, uintptr_t addr) {
  Dl_info info;
  if (addr == 0 || dladdr(reinterpret_cast<void*>(addr), &info) == 0 || info.dli_fname == nullptr) return false;
  char line[512];
  // Symbol-relative where dladdr names one, else relative to the object's load address.
  const uintptr_t base = reinterpret_cast<uintptr_t>(info.dli_sname != nullptr ? info.dli_saddr : info.dli_fbase);
  std::snprintf(line, sizeof line, "  %s 0x%lx: %s+0x%lx (%s)\n", label, static_cast<unsigned long>(addr),
                info.dli_sname != nullptr ? info.dli_sname : "?", static_cast<unsigned long>(addr - base),
                info.dli_fname);
  Say(line);
  return true;
}

void OnCrash(int sig, siginfo_t* si, void* ctx) {
  Say("\n*** fatal signal: ");
  Say(strsignal(sig));
  char line[128];
  std::snprintf(line, sizeof line, " at address 0x%lx\n", reinterpret_cast<unsigned long>(si->si_addr));
  Say(line);
#if defined(__x86_64__)
  const auto* uc = static_cast<const ucontext_t*>(ctx);
  const uintptr_t rip = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  const auto* rsp = reinterpret_cast<const uintptr_t*>(uc->uc_mcontext.gregs[REG_RSP]);
  if (!Describe("instruction", rip)) {
    std::snprintf(line, sizeof line, "  instruction 0x%lx: in no loaded object\n", static_cast<unsigned long>(rip));
    Say(line);
  }
  Say("  code addresses on the stack:\n");
  for (int i = 0, shown = 0; i < 64 && shown < 12; ++i) shown += Describe("   ", rsp[i]);
#endif
  Say("  unwinder's stack:\n");
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

struct Install {
  Install() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnCrash;
    sa.sa_flags = SA_SIGINFO;
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
  }
} install;

}  // namespace
