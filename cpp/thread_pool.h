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

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads - 1 background workers
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(item, worker) for every item in [0, n_items), worker in [0, size()); returns when all are done and
  // rethrows the first exception an item threw.
  void run(int64_t n_items, const std::function<void(int64_t, int)>& fn);

 private:
  void work(int worker, const std::function<void(int64_t, int)>& job, int64_t n_items);
  void worker_loop(int worker);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t n_items_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<uint64_t> generation_{0};  // a new loop; written under mutex_, read while spinning without it
  std::atomic<int> busy_workers_{0};  // workers that joined the current loop and have not left it (changed under mutex_)
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;
};

}  // namespace mbfast
