// Busy-waiting for another thread, used where a wake-up through the OS would cost more than the wait (column_team,
// thread_pool). Each poll is a pause; every 64th poll also yields the rest of the time slice, so a waiter that shares
// a core with the thread it waits for (more threads than free cores) lets that thread run instead of starving it.
#pragma once

#include <thread>

namespace mbfast {

class SpinWait {
 public:
  void operator()() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (++polls_ % 64 == 0) std::this_thread::yield();
  }
  unsigned polls() const { return polls_; }

 private:
  unsigned polls_ = 0;
};

}  // namespace mbfast
