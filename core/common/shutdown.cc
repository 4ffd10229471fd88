#include "core/common/shutdown.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace grpo {

ShutdownSignal& ShutdownSignal::Install() {
  static ShutdownSignal* instance = [] {
    auto* s = new ShutdownSignal();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([s, set] {
      int sig = 0;
      while (sigwait(&set, &sig) != 0) {
      }
      s->Trigger(sig);
    }).detach();
    return s;
  }();
  return *instance;
}

int ShutdownSignal::Wait() {
  done_.WaitForNotification();
  return signal_.load();
}

void ShutdownSignal::Trigger(int signal) {
  bool expected = false;
  if (triggered_.compare_exchange_strong(expected, true)) {
    signal_ = signal;
    done_.Notify();
  }
}

}  // namespace grpo
