#pragma once
// What report.json records so that a user can repeat a run: the command
// line, every hyperparameter as resolved (defaults included), the model, the
// threads and BLAS, the software versions and the git commit of the build.
// No LibTorch in this header.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/spec.hpp"
#include "runtime/dist.hpp"
#include "runtime/trainer.hpp"
#include "schedule/schedule.hpp"

namespace resist::runtime {

// `argv` joined for a POSIX shell (arguments quoted where needed).
std::string shell_command(const std::vector<std::string>& argv);

// The "run" section of report.json. `threads`: intra-op threads in use;
// `optimizer`: "reset" or "keep" as resolved.
nlohmann::json run_record(const TrainOptions& o, const Schedule& header, const ModelSpec& spec, const Env& env,
                          int threads, const std::string& optimizer);

// libtorch, compiler, BLAS, git commit of the build.
nlohmann::json software_record();

// What a run's trajectory depends on, as checkpoints record it and a resume
// must repeat it: the schedule's config (protocol, model, workers, seed, ℓ,
// batch, epochs/rounds, d_min, ...), the optimizer's settings, the number of
// rounds and a hash of the whole schedule walked (header and every round).
nlohmann::json checkpoint_config(const TrainOptions& o, const RoundSource& schedule);

}  // namespace resist::runtime
