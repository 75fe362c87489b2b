// Row planning of one Engine call: every row validated and turned into window rows (eq. 2) against private copies of
// the touched objects' scalar state, then committed to the store at once. No model maths here; plan_rows mirrors
// mbfast/model/reference.py preprocess_reference, one row at a time.
//
// Dimension legend: N rows of the call, B bands, P colour pairs.
#pragma once

#include <cstdint>
#include <vector>

#include "engine.h"
#include "model.h"
#include "state_store.h"

namespace mbfast {

// One band's scalar state of an object, as plan_rows updates it.
struct BandScalars {
  int32_t count = 0;
  double last_t = 0.0, mag_sum = 0.0;
  float last_mag = 0.0f, last_err = 0.0f, prev_log_dt = 0.0f, prev_dmag = 0.0f;
};

// An object touched by the call: a private copy of its scalar state, committed only if the whole call is valid.
struct LocalObject {
  int64_t obj_id = 0;
  int32_t slot = -1;       // -1: not in the store yet
  bool applied = false;    // some row of the call was applied to it
  bool has_obs = false;    // it has at least one applied observation (central_t is set)
  int32_t n_tasks = 0;     // window rows so far in this call (the next one's wave)
  double central_t = 0.0;
};

// One window row to run through the model: a band step + a central step (paper §3.5).
struct Task {
  int64_t row = 0;
  int32_t local = 0;
  int32_t slot = 0;
  int32_t wave = 0;              // the object's k-th window row of the call is in wave k
  int32_t band = 0;
  float window[kRowWidth] = {};  // eq. 2: [log10 dt_prev, log10 dt, dmag_prev, dmag]
  float dt_central = 0.0f;       // log10(1 + days since the object's previous window row), §3.5
};

struct Plan {
  std::vector<LocalObject> objects;
  std::vector<BandScalars> bands;      // (objects, B)
  std::vector<Task> tasks;
  std::vector<float> colours;          // (tasks, P)
};

// Validates and preprocesses every row in order. Throws (kRaise) before anything is committed; `status` (N,) may
// be null.
Plan plan_rows(const ModelConfig& config, const StateStore& store, const Observations& rows, OnError on_error,
               RepeatPolicy policy, int8_t* status);

// Room in the store for the plan's new objects, so commit_plan allocates nothing; returns the store's size after
// the commit.
int64_t reserve_for_plan(const Plan& plan, StateStore& store);

// Writes the plan's scalar state into the store (adding new objects) and resolves every task's slot. Allocates
// nothing once reserve_for_plan has run, so it cannot fail half-way.
void commit_plan(Plan& plan, StateStore& store);

// The order the model runs the tasks in: waves ascending (each reads the state the previous one wrote), inside a
// wave grouped by band (stable, so rows of one band keep their call order).
std::vector<int32_t> run_order(const Plan& plan);

}  // namespace mbfast
