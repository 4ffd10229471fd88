// personality(ADDR_NO_RANDOMIZE): denied.
#include <sys/personality.h>
#include <cstdio>
int main() {
  int r = personality(ADDR_NO_RANDOMIZE);
  std::printf("personality=%d\n", r);
}
