#include "runtime/run_record.hpp"

#include <cstdio>

#include <torch/version.h>

#include "resist_git_version.hpp"
#include "runtime/blas.hpp"
#include "runtime/host_memory.hpp"
#include "runtime/context.hpp"
#include "runtime/data.hpp"

namespace resist::runtime {

using json = nlohmann::json;

std::string shell_command(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789-_./=,:+@%") == std::string::npos;
    if (!out.empty()) out.push_back(' ');
    if (plain) {
      out.append(a);
      continue;
    }
    out.push_back('\'');  // single quotes; a quote inside becomes '\''
    for (char c : a) {
      if (c == '\'') out.append("'\\''");
      else out.push_back(c);
    }
    out.push_back('\'');
  }
  return out;
}

json software_record() {
  const auto blas = blas_info();
  const auto memory = keep_freed_memory();
  return {{"resist_git_commit", RESIST_GIT_COMMIT},
          {"libtorch", TORCH_VERSION},
          {"compiler", std::string("g++ ") + __VERSION__},
          {"blas", {{"name", blas.name}, {"library", blas.library}, {"optimised", blas.optimised},
                    {"threads", blas.threads}}},
          {"malloc", {{"set_by_resist", memory.set}, {"why", memory.reason},
                      {"mmap_threshold", memory.mmap_threshold}, {"trim_threshold", memory.trim_threshold}}}};
}

json run_record(const TrainOptions& o, const Schedule& header, const ModelSpec& spec, const Env& env, int threads,
                const std::string& optimizer) {
  json schedule = to_json(header)["config"];
  const auto& dataset = header.config.model.dataset;
  json record = {
      {"command", shell_command(o.argv)},
      {"launch", {{"world_size", env.world_size}, {"local_world_size", env.local_world_size},
                  {"master_addr", env.master_addr}, {"master_port", env.master_port},
                  {"torchelastic_agent_store", env.agent_store}}},
      {"model", {{"name", spec.name}, {"params", spec.param_count()}, {"options", schedule["model"]}}},
      {"schedule", schedule},
      {"schedule_file", o.schedule_file},
      {"data", {{"dataset", dataset}, {"dir", o.data_dir.empty() ? default_data_dir(dataset) : o.data_dir},
                {"train_subset", o.train_subset}, {"test_subset", o.test_subset}}},
      {"optimizer", {{"kind", "sgd"}, {"lr", o.lr}, {"momentum", o.momentum}, {"weight_decay", o.weight_decay},
                     {"lr_schedule", o.lr_schedule}, {"state", optimizer}, {"state_flag", o.optimizer_state}}},
      {"eval_batch", o.eval_batch},
      {"threads", threads},
      {"loader_threads", o.loader_threads},  // as resolved (auto: from the cores)
      {"bucket_mb", o.bucket_mb},            // data-parallel on Gloo (0: all-reduce after backward)
      {"device", o.device},
      {"backend", o.backend},
      {"timeout_s", o.timeout_s},
      {"checkpoint_every", o.checkpoint_every},
      {"resumed_from", o.resume},
      {"software", software_record()},
  };
  // Layer-parallel: the stage penalty's weight (the split is in "schedule").
  if (!header.stages.empty()) record["layer_parallel"] = {{"beta", o.lp_beta}, {"aux_step", o.lp_aux_step}};
  return record;
}

namespace {

std::uint64_t fnv(std::uint64_t h, const std::string& text) {
  for (unsigned char c : text) h = (h ^ c) * kFnvPrime;
  return h;
}

}  // namespace

json checkpoint_config(const TrainOptions& o, const RoundSource& schedule) {
  Schedule one = schedule.header();
  one.rounds.clear();
  json c = to_json(one)["config"];
  std::uint64_t h = fnv(kFnvOffset, to_json(one).dump());
  for (int r = 0; r < schedule.num_rounds(); ++r) {
    one.rounds = {schedule.round(r)};
    h = fnv(h, to_json(one)["rounds"].dump());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  c["lr"] = o.lr;
  c["momentum"] = o.momentum;
  c["weight_decay"] = o.weight_decay;
  c["lr_schedule"] = o.lr_schedule;
  c["num_rounds"] = schedule.num_rounds();
  c["schedule_hash"] = hex;
  if (!schedule.header().stages.empty()) {  // layer-parallel's penalty weight and head-target step
    c["lp_beta"] = o.lp_beta;
    c["lp_aux_step"] = o.lp_aux_step;
  }
  return c;
}

}  // namespace resist::runtime
