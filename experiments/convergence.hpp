#pragma once
// The `convergence` study (time to accuracy): real training runs record test
// accuracy every few rounds; the simulator says when each round ends on a
// platform. This header holds the part that is plain arithmetic on learning
// curves, so that unit tests can check it without training anything.
#include <optional>
#include <string>
#include <vector>

#include "experiments/study.hpp"
#include "schedule/json_util.hpp"

namespace resist::study {

// One evaluation of a run: after round `round` (0-based, as in
// metrics.jsonl), `epochs` passes over the training subset by all workers
// together, `time_s` the predicted wall-clock at the end of that round,
// `accuracy` the measured test accuracy (a fraction, 0..1).
struct CurvePoint {
  int round = 0;
  double epochs = 0, time_s = 0, accuracy = 0;
};

// Time to a target accuracy is the FIRST evaluation whose accuracy is at or
// above the target: the curve is not interpolated between evaluations (test
// accuracy is noisy and not monotonic, and a straight line between two
// evaluations would claim a precision the curve does not have). The answer
// is thus late by at most one evaluation interval. nullopt: never reached.
std::optional<CurvePoint> first_crossing(const std::vector<CurvePoint>& curve, double target);

// The seed-mean curve: point k is the mean of point k of every seed (round
// from the first seed; seeds of one configuration evaluate after the same
// rounds). Curves of different lengths are cut to the shortest.
std::vector<CurvePoint> mean_curve(const std::vector<std::vector<CurvePoint>>& seeds);

// Reads a run's metrics.jsonl: the rounds that carry a test accuracy.
// `round_end_s[r]`: predicted end of round r; `iters_done[r]`: iterations
// per worker done after round r; `iters_per_epoch`: per worker.
std::vector<CurvePoint> read_curve(const std::string& metrics_path, const std::vector<double>& round_end_s,
                                   const std::vector<long long>& iters_done, int iters_per_epoch);

// Runs the study: every protocol × workers × seed trained for real
// (resist-launch + resist-train on loopback, --schedule), every run's
// schedule simulated on the study's platform; writes curves.csv,
// time_to_accuracy.csv, final.csv, runs/ and the report section.
Outcome run_convergence(const Study& s, const std::string& out, const Paths& paths);

// The keys only `convergence` takes ("seeds", "evals_per_epoch",
// "target_accuracies"); called by read_study after the common keys.
void parse_convergence_keys(const json_util::Reader& root, Study& s);

}  // namespace resist::study
