// Linked into the torch-only tests: a crash prints its stack (function names, thanks
// to -rdynamic) before the process dies, so a failure on a lent machine whose only
// output is a log can be read without a debugger.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <initializer_list>

namespace {

void OnCrash(int sig) {
  const char* what = strsignal(sig);
  (void)!write(STDERR_FILENO, "\n*** fatal signal: ", 19);
  (void)!write(STDERR_FILENO, what, std::strlen(what));
  (void)!write(STDERR_FILENO, "; stack:\n", 9);
  void* frames[64];
  const int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  signal(sig, SIG_DFL);
  raise(sig);
}

struct Install {
  Install() {
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) signal(sig, OnCrash);
  }
} install;

}  // namespace
