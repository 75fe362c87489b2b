// plan_rows, commit_plan (plan.h): the cheap scalar half of a call, all of it before any state changes.
#include "plan.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>

namespace mbfast {

namespace {

template <typename T>
std::string number_text(T value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

std::string describe_row(int64_t row, int64_t obj_id) {
  return "row " + std::to_string(row) + " (obj_id " + std::to_string(obj_id) + ")";
}

}  // namespace

Plan plan_rows(const ModelConfig& config, const StateStore& store, const Observations& rows, OnError on_error,
               RepeatPolicy policy, int8_t* status) {
  const int B = config.n_bands();
  Plan plan;
  SlotIndex local_of;  // obj_id -> index in plan.objects
  local_of.reserve(static_cast<size_t>(std::min<int64_t>(rows.n, 1 << 20)));
  auto reject = [&](int64_t row, Status code, const std::string& message) {
    if (on_error == OnError::kRaise) throw std::invalid_argument(describe_row(row, rows.obj_id[row]) + ": " + message);
    if (status) status[row] = static_cast<int8_t>(code);
  };
  for (int64_t row = 0; row < rows.n; ++row) {
    const int64_t id = rows.obj_id[row];
    const int band = rows.band[row];
    const double t = rows.t[row];
    const float mag = rows.mag[row], err = rows.err[row];
    if (band < 0 || band >= B)  // structural: mbfast/engine.py checks bands before calling
      throw std::invalid_argument(describe_row(row, id) + ": band must be in 0.." + std::to_string(B - 1) +
                                  ", got " + std::to_string(band));
    if (!std::isfinite(t)) {
      reject(row, Status::kInvalid, "t must be finite, got " + number_text(t));
      continue;
    }
    if (!std::isfinite(mag)) {
      reject(row, Status::kInvalid, "mag must be finite, got " + number_text(mag));
      continue;
    }
    if (!std::isfinite(err)) {
      reject(row, Status::kInvalid, "err must be finite, got " + number_text(err));
      continue;
    }
    if (!(err > 0.0f)) {
      reject(row, Status::kInvalid, "err must be > 0, got " + number_text(err));
      continue;
    }
    if (std::abs(t) > kMaxAbsTime) {
      reject(row, Status::kInvalid, "t must be within +-1e12 days, got " + number_text(t));
      continue;
    }
    if (std::abs(mag) > kMaxAbsMag) {
      reject(row, Status::kInvalid, "mag must be within +-10000, got " + number_text(mag));
      continue;
    }
    const auto next = static_cast<int32_t>(plan.objects.size());
    const int32_t local = local_of.insert(id, next);  // one probe: the object's index, new or not
    if (local == next) {
      LocalObject object;
      object.obj_id = id;
      object.slot = store.find(id);
      plan.bands.resize(plan.bands.size() + B);
      if (object.slot >= 0) {
        const size_t s = object.slot;
        object.has_obs = true;  // stored objects have had at least one observation applied
        object.central_t = store.central_t[s];
        for (int b = 0; b < B; ++b) {
          BandScalars& scalars = plan.bands[size_t(local) * B + b];
          const size_t i = s * B + b;
          scalars.count = store.count[i];
          scalars.last_t = store.last_t[i];
          scalars.mag_sum = store.mag_sum[i];
          scalars.last_mag = store.last_mag[i];
          scalars.last_err = store.last_err[i];
          scalars.prev_log_dt = store.prev_log_dt[i];
          scalars.prev_dmag = store.prev_dmag[i];
        }
      }
      plan.objects.push_back(object);
    }
    LocalObject& object = plan.objects[local];
    BandScalars* object_bands = &plan.bands[size_t(local) * B];
    BandScalars& scalars = object_bands[band];
    if (scalars.count > 0 && !(t > scalars.last_t)) {
      const bool same_t = t == scalars.last_t;
      const bool repeat = same_t && (policy == RepeatPolicy::kTable ||
                                     (mag == scalars.last_mag && err == scalars.last_err));
      if (repeat) {
        if (status) status[row] = static_cast<int8_t>(Status::kDuplicate);
      } else {
        reject(row, Status::kLate,
               "t must be after the last observation of band '" + config.bands[band] + "' (t=" +
                   number_text(scalars.last_t) + "), got " + number_text(t));
      }
      continue;
    }
    if (scalars.count >= kMaxObservations) {
      reject(row, Status::kInvalid, "band '" + config.bands[band] + "' of this object already has " +
                                        std::to_string(kMaxObservations) + " observations, the most the engine counts");
      continue;
    }
    // apply: the newest observation joins the band's window (eq. 2) and its cumulative mean (Appendix B)
    object.applied = true;
    if (!object.has_obs) {
      object.has_obs = true;
      object.central_t = t;  // first multiband dt counts from the object's first observation
    }
    scalars.count += 1;
    scalars.mag_sum += static_cast<double>(mag);
    const float log_dt = scalars.count >= 2 ? static_cast<float>(std::log10(t - scalars.last_t)) : 0.0f;
    const float dmag = scalars.count >= 2 ? static_cast<float>(static_cast<double>(mag) - scalars.last_mag) : 0.0f;
    if (scalars.count >= 3) {
      Task task;
      task.row = row;
      task.local = local;
      task.wave = object.n_tasks++;
      task.band = band;
      task.window[0] = scalars.prev_log_dt;
      task.window[1] = log_dt;
      task.window[2] = scalars.prev_dmag;
      task.window[3] = dmag;
      task.dt_central = static_cast<float>(std::log10(1.0 + std::max(t - object.central_t, 0.0)));
      object.central_t = t;
      plan.tasks.push_back(task);
      for (int a = 0; a < B; ++a) {  // lexicographic pairs (a, c), colour = mean[a] - mean[c], 0 if either unseen
        for (int c = a + 1; c < B; ++c) {
          const BandScalars& first = object_bands[a];
          const BandScalars& second = object_bands[c];
          plan.colours.push_back(first.count && second.count
                                     ? static_cast<float>(first.mag_sum / first.count - second.mag_sum / second.count)
                                     : 0.0f);
        }
      }
    }
    scalars.prev_log_dt = log_dt;
    scalars.prev_dmag = dmag;
    scalars.last_t = t;
    scalars.last_mag = mag;
    scalars.last_err = err;
    if (status) status[row] = static_cast<int8_t>(scalars.count >= 3 ? Status::kPredicted : Status::kWarmingUp);
  }
  return plan;
}

int64_t reserve_for_plan(const Plan& plan, StateStore& store) {
  int64_t n_new = 0;
  for (const LocalObject& object : plan.objects) n_new += object.applied && object.slot < 0;
  // grow geometrically: reserving the exact size on every call made each new object copy the whole store
  const int64_t needed = store.size() + n_new;
  store.reserve(needed > static_cast<int64_t>(store.obj_id.capacity()) ? std::max(needed, 2 * store.size()) : needed);
  return needed;
}

void commit_plan(Plan& plan, StateStore& store) {
  const int B = store.n_bands;
  for (size_t local = 0; local < plan.objects.size(); ++local) {
    LocalObject& object = plan.objects[local];
    if (!object.applied) continue;
    if (object.slot < 0) object.slot = store.add(object.obj_id);
    const size_t s = object.slot;
    store.central_t[s] = object.central_t;
    for (int b = 0; b < B; ++b) {
      const BandScalars& scalars = plan.bands[local * B + b];
      const size_t i = s * B + b;
      store.count[i] = scalars.count;
      store.last_t[i] = scalars.last_t;
      store.mag_sum[i] = scalars.mag_sum;
      store.last_mag[i] = scalars.last_mag;
      store.last_err[i] = scalars.last_err;
      store.prev_log_dt[i] = scalars.prev_log_dt;
      store.prev_dmag[i] = scalars.prev_dmag;
    }
  }
  for (Task& task : plan.tasks) task.slot = plan.objects[task.local].slot;
}

std::vector<int32_t> run_order(const Plan& plan) {
  std::vector<int32_t> order(plan.tasks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const Task& x = plan.tasks[a];
    const Task& y = plan.tasks[b];
    return x.wave != y.wave ? x.wave < y.wave : x.band < y.band;
  });
  return order;
}

}  // namespace mbfast
