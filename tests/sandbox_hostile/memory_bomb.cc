// Memory bomb in C++: allocate and touch 16 MiB at a time, forever.
#include <cstdlib>
#include <cstring>
int main() {
  for (;;) {
    char* p = static_cast<char*>(std::malloc(16 << 20));
    if (p) std::memset(p, 1, 16 << 20);
  }
}
