// resist-train: one worker of a distributed training run (or a profile).
// Rendezvous follows torchrun's environment contract; see runtime/dist.hpp.
// The worker loop is Trainer::run() in runtime/trainer.cpp.
#include <iostream>

#include "models/error.hpp"
#include "runtime/trainer.hpp"
#include "tools/cli.hpp"

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-train", [&] {
    namespace po = boost::program_options;
    resist::runtime::TrainOptions o;
    std::string hidden, protocol = "resist";
    po::options_description d("resist-train options");
    d.add_options()("help,h", "this help")
        ("protocol", po::value(&protocol)->default_value(protocol),
         "resist|local-sgd|data-parallel|ist|layer-parallel")
        ("local-iters", po::value(&o.schedule.local_iters)->default_value(o.schedule.local_iters),
         "local iterations per round (ℓ; data-parallel: 1)");
    resist::cli::add_model_options(d, o.schedule.model, hidden);
    resist::cli::add_schedule_options(d, o.schedule);
    d.add_options()
        ("lp-beta", po::value(&o.lp_beta)->default_value(o.lp_beta),
         "layer-parallel: weight β of each stage's penalty (docs/layer-parallel.md)")
        ("schedule", po::value(&o.schedule_file), "walk this schedule file instead of generating one")
        ("data-dir", po::value(&o.data_dir), "dataset directory (default: fashion-mnist from Debian's package, "
                                             "cifar10: data/cifar-10-batches-bin, cifar100: data/cifar-100-binary)")
        ("train-subset", po::value(&o.train_subset)->default_value(0), "use the first N training images (0: all)")
        ("test-subset", po::value(&o.test_subset)->default_value(0), "use the first N test images (0: all)")
        ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
        ("momentum", po::value(&o.momentum)->default_value(o.momentum), "SGD momentum")
        ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "SGD weight decay")
        ("lr-schedule", po::value(&o.lr_schedule)->default_value(o.lr_schedule),
         "step (÷10 at 50% and 75% of training) | cosine")
        ("optimizer-state", po::value(&o.optimizer_state)->default_value(o.optimizer_state),
         "reset (re-create every round) | keep | auto (resist: reset, as the authors; others: keep)")
        ("eval-batch", po::value(&o.eval_batch)->default_value(o.eval_batch), "evaluation batch size")
        ("out", po::value(&o.out), "output directory: metrics.jsonl, report.json, timeline.json, model.pt")
        ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(0), "checkpoint every K rounds (needs --out)")
        ("resume", po::value(&o.resume), "continue from the checkpoints in this earlier --out directory")
        ("profile", po::value(&o.profile), "measure per-block forward/backward times, write this profile file, exit")
        ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s),
         "seconds to wait for a peer (rendezvous and every message) before failing")
        ("threads", po::value(&o.threads)->default_value(0), "intra-op threads (0: cores / local workers)")
        ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda")
        ("backend", po::value(&o.backend)->default_value(o.backend), "auto (cuda: nccl, cpu: gloo) | gloo | nccl")
        ("check-sync", po::bool_switch(&o.check_sync), "after every sync, compare hashes of all shared copies")
        ("quiet", po::bool_switch(&o.quiet), "no progress on stderr")
        ("fail-at-round", po::value(&o.fail_round)->default_value(-1), "testing: inject a fault at this round")
        ("fail-rank", po::value(&o.fail_rank)->default_value(0), "testing: the rank that fails")
        ("fail-mode", po::value(&o.fail_mode)->default_value(""), "testing: kill | nan");
    po::variables_map vm;
    if (!resist::cli::parse(argc, argv, d, vm,
                            "usage: resist-train [options]   (one worker; start N with resist-launch -n N -- "
                            "resist-train ... or torchrun --no-python --nproc-per-node=N resist-train ...)"))
      return 0;
    resist::cli::finish_model_options(o.schedule.model, hidden);
    o.schedule.protocol = resist::parse_protocol(protocol);
    resist::cli::reject_layer_parallel_flags(vm, o.schedule.protocol);
    if (!(o.lp_beta > 0)) throw resist::UserError("--lp-beta: must be > 0 (got " + std::to_string(o.lp_beta) + ")");
    if (o.fail_mode != "" && o.fail_mode != "kill" && o.fail_mode != "nan")
      throw resist::UserError("--fail-mode: unknown value '" + o.fail_mode + "' (accepted: kill, nan)");
    if (o.checkpoint_every < 0) throw resist::UserError("--checkpoint-every: must be >= 0");
    if (o.checkpoint_every > 0 && o.out.empty()) throw resist::UserError("--checkpoint-every: needs --out DIR");
    if (o.eval_batch < 1) throw resist::UserError("--eval-batch: must be >= 1");
    if (!o.profile.empty()) return resist::runtime::profile(o);
    return resist::runtime::train(o);
  });
}
