// Raw, netlink and IPv6 sockets: all denied by seccomp.
#include <sys/socket.h>
#include <cstdio>
int main() {
  int fd = socket(AF_NETLINK, SOCK_RAW, 0);
  std::printf("fd=%d\n", fd);
}
