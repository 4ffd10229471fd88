// ptrace(PTRACE_TRACEME) / attach: denied by seccomp (SIGSYS).
#include <sys/ptrace.h>
#include <cstdio>
int main() {
  long r = ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
  std::printf("ptrace=%ld\n", r);
}
