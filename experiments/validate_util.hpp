#pragma once
// Helpers the `validate` study defines (validate.cpp) and `validate-grid`
// (validate_grid.cpp) reuses: runtime command lines, schedule files, the
// loopback network fit, and cutting a timeline into rounds.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "experiments/study.hpp"
#include "schedule/schedule.hpp"
#include "schedule/timeline.hpp"

namespace resist::study::validate_util {

std::string quote(const std::string& s);
std::string fmt(const char* f, double v);
// Runs `cmd` with its output in `log`; a failure is a UserError naming the
// exit status and the log's last line (a study that fails removes what it
// wrote, the log too).
void run_command(const std::string& cmd, const std::string& log, const std::string& who = "validate");
std::string failure_line(const std::string& who, int status, const std::string& log);
std::string model_flags(const Study& s);
std::string train_flags(const Study& s, const std::string& schedule_file);
// `resist-train --profile` of the study's model into `profile`, launched as
// max_ranks processes: as many as the cores hold time its figures at once
// (the cores as busy as in the runs), then all of them the iteration (the
// simulator's variability at up to max_ranks ranks); returns the command line.
std::string profile_command(const Study& s, const std::string& launch, const std::string& train, int max_ranks,
                            const std::string& profile);
ScheduleConfig config_for(const Study& s, Protocol p, int machines, int ell, std::uint64_t seed);
std::shared_ptr<const Schedule> write_schedule(const ModelSpec& spec, const ScheduleConfig& c, const std::string& path);
// One timed collective: ring steps, bytes one rank sends, seconds.
struct CommSample {
  double steps = 0, bytes = 0, seconds = 0;
};
// Least squares of seconds = steps·a + bytes/B over the samples (relative:
// weighted so every sample's relative error counts alike): {a, B}. A fit
// with a non-positive term falls back to the one-term fit (latency alone,
// B = 1e12 B/s; or bandwidth alone, a = 0.1 µs) with the smaller residual.
std::pair<double, double> fit_alpha_beta(const std::vector<CommSample>& samples, bool relative);
// The sync entry delay (sim::Platform::sync_entry_delay_s, sync_entry_rise_s)
// through two measurements: an all-reduce takes extra1 / extra2 seconds
// longer after busy1 < busy2 seconds of compute on every rank. {delay,
// rise} with delay × (1 − exp(−busy / rise)) through both points; rise 0
// (the whole delay whatever the compute) when the two are already alike,
// at most busy2 (a straight line through them is not told apart).
std::pair<double, double> fit_entry_delay(double busy1_s, double extra1_s, double busy2_s, double extra2_s);
// The wait per step of a collective whose ranks outnumber the cores they
// share (sim::Platform::collective_step_wait_s), from ring all-reduces timed
// on those cores (validate-grid: the smallest, 4 KiB, where the bytes hardly
// count) and the link {a, B} fitted to exchanges between two ranks: the
// median over the ring samples of (seconds − steps·a − bytes/B) / steps, 0
// when that is not positive.
double fit_step_wait(const std::vector<CommSample>& ring, double a, double B);
// Least-squares fit of time = steps·a + bytes/B over a measured run's all-reduce events: {a, B}.
std::pair<double, double> fit_network(const Schedule& schedule, const Timeline& t, int skip_rounds);

struct RoundCut {
  double start_s = 1e300, end_s = 0, compute_s = 0, comm_s = 0;
};
std::vector<RoundCut> cut_rounds(const Timeline& t, int rounds);
double rel_err(double predicted, double measured);
double median(std::vector<double> v);  // 0 when empty

}  // namespace resist::study::validate_util
