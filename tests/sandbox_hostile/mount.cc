// mount a tmpfs over /usr: denied by seccomp.
#include <sys/mount.h>
#include <cstdio>
int main() {
  int r = mount("none", "/usr", "tmpfs", 0, nullptr);
  std::printf("mount=%d\n", r);
}
