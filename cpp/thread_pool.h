// A fixed pool of worker threads for one parallel loop at a time (the caller works too).
// Which worker runs which item varies between runs; callers make every item's result independent of that.
// After a loop, workers spin briefly before sleeping, so a stream of small calls (one row each) finds them awake.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mbfast {

// A callable fn(item, worker) by reference: holding one allocates nothing (a std::function made from a lambda with
// a few captures does), so a step allocates nothing once it has started writing the state (Engine::advance).
class ItemFn {
 public:
  template <typename F>
  explicit ItemFn(F& fn)
      : object_(const_cast<void*>(static_cast<const void*>(&fn))), call_([](void* object, int64_t item, int worker) {
          (*static_cast<F*>(object))(item, worker);
        }) {}
  void operator()(int64_t item, int worker) const { call_(object_, item, worker); }

 private:
  void* object_;
  void (*call_)(void*, int64_t, int);
};

class ThreadPool {
 public:
  // n_threads - 1 background workers; each calls `init` once when it starts (scratch buffers sized up front).
  // Throws std::runtime_error naming the process's limits when a thread cannot be started.
  explicit ThreadPool(int n_threads, std::function<void()> init = {});
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(item, worker) for every item in [0, n_items), worker in [0, size()); returns when all are done and
  // rethrows the first exception an item threw.
  template <typename F>
  void run(int64_t n_items, F&& fn) {
    run_items(n_items, ItemFn(fn));
  }

 private:
  void run_items(int64_t n_items, const ItemFn& fn);
  void work(int worker, const ItemFn& job, int64_t n_items);
  void worker_loop(int worker);
  void stop();  // wakes and joins every worker

  std::function<void()> init_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const ItemFn* job_ = nullptr;
  int64_t n_items_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> generation_{0};  // a new loop; written under mutex_, read while spinning without it
  std::atomic<int> busy_workers_{0};  // workers that joined the current loop and have not left it (changed under mutex_)
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;
};

}  // namespace mbfast
