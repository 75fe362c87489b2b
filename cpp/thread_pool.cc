// ThreadPool (see thread_pool.h): items handed out by an atomic counter, a generation number wakes the workers.
#include "thread_pool.h"

#include <sys/resource.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

#include "spin_wait.h"

namespace mbfast {

namespace {

// How long an idle worker keeps checking for the next loop before it sleeps: longer than the Python-side gap
// between two small Engine.step calls (~10 us), short enough not to hold a core between bursts.
constexpr auto kSpinTime = std::chrono::microseconds(200);
constexpr unsigned kJoinPolls = 2048;  // ~20-50 us of polling for the workers of a finished loop

// " (limits: ...)" for the limits a failed thread start may have met, with their values where they are set.
std::string thread_limits() {
  std::string text = " (the process's limits: threads RLIMIT_NPROC (ulimit -u) ";
  rlimit limit{};
  if (::getrlimit(RLIMIT_NPROC, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    text += std::to_string(limit.rlim_cur);
  else
    text += "unlimited";
  text += ", address space RLIMIT_AS (ulimit -v) ";
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    text += std::to_string(limit.rlim_cur >> 20) + " MiB";
  else
    text += "unlimited";
  return text + ", or a container's pids.max)";
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, std::function<void()> init) : init_(std::move(init)) {
  workers_.reserve(n_threads > 1 ? size_t(n_threads) - 1 : 0);
  for (int worker = 1; worker < n_threads; ++worker) {
    try {
      workers_.emplace_back([this, worker] { worker_loop(worker); });
    } catch (const std::system_error& error) {
      stop();  // the workers already started wait on start_: they must leave before it is destroyed
      throw std::runtime_error("cannot start thread " + std::to_string(worker + 1) + " of num_threads=" +
                               std::to_string(n_threads) + ": " + error.what() + thread_limits() +
                               "; ask for fewer threads");
    }
  }
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::work(int worker, const ItemFn& job, int64_t n_items) {
  while (true) {
    const int64_t item = next_.fetch_add(1);
    if (item >= n_items) return;
    try {
      job(item, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(int worker) {
  if (init_) {
    try {
      init_();
    } catch (const std::bad_alloc&) {  // not fatal: the buffers then grow on first use
    }
  }
  uint64_t seen = 0;
  while (true) {
    const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
    for (SpinWait wait; generation_.load(std::memory_order_acquire) == seen && !stopping_;) {
      wait();
      if (wait.polls() % 256 == 0 && std::chrono::steady_clock::now() > spin_until) break;
    }
    const ItemFn* job;
    int64_t n_items;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (job_ == nullptr) continue;  // that loop finished without this worker: nothing to join
      ++busy_workers_;
      job = job_;
      n_items = n_items_;
    }
    work(worker, *job, n_items);
    std::lock_guard<std::mutex> lock(mutex_);
    if (--busy_workers_ == 0) done_.notify_one();
  }
}

void ThreadPool::run_items(int64_t n_items, const ItemFn& fn) {
  if (workers_.empty() || n_items <= 1) {
    for (int64_t item = 0; item < n_items; ++item) fn(item, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    n_items_ = n_items;
    next_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  start_.notify_all();
  work(0, fn, n_items);
  // Every item is taken. Wait only for the workers that joined this loop (they may still be running one): a worker
  // still asleep is not waited for, and once job_ is cleared it sees the loop is over when it wakes.
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
  }
  // those workers are usually finishing their last item: a short spin saves a sleep and wake-up through the OS
  for (SpinWait wait; busy_workers_.load(std::memory_order_acquire) > 0 && wait.polls() < kJoinPolls;) wait();
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return busy_workers_ == 0; });
  if (error_) std::rethrow_exception(error_);
}

}  // namespace mbfast
