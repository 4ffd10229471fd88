// Thread bomb: threads count against the pids cgroup too.
#include <thread>
#include <vector>
int main() {
  std::vector<std::thread> ts;
  for (;;) {
    try {
      ts.emplace_back([] { for (;;) std::this_thread::yield(); });
    } catch (...) {
    }
  }
}
