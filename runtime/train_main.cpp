// resist-train: one worker of a distributed training run (or a profile).
// Rendezvous follows torchrun's environment contract; see runtime/dist.hpp.
// The worker loop is Trainer::run() in runtime/trainer.cpp.
#include <iostream>
#include <sstream>
#include <string>

#include "models/error.hpp"
#include "runtime/trainer.hpp"
#include "tools/cli.hpp"

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Flags checked before anything starts (no rendezvous, no file): a bad one
// is one line and exit 2, never a "peer" failure later.
void check_flags(const resist::runtime::TrainOptions& o) {
  using resist::UserError;
  auto in = [](const char* flag, double v, double lo, double hi, const char* rule) {
    if (!(v >= lo && v <= hi)) throw UserError(std::string(flag) + ": must be " + rule + " (got " + num(v) + ")");
  };
  if (!(o.lr > 0 && o.lr <= 1e6)) throw UserError("--lr: must be > 0 (got " + num(o.lr) + ")");
  in("--momentum", o.momentum, 0, 0.999999, "in 0..1 (below 1)");
  in("--weight-decay", o.weight_decay, 0, 1, "in 0..1");
  if (!(o.timeout_s > 0 && o.timeout_s <= 1e6))
    throw UserError("--timeout: must be seconds in (0, 1000000] (got " + num(o.timeout_s) + ")");
  in("--threads", o.threads, 0, 4096, "in 0..4096 (0: cores / local workers)");
  if (o.train_subset < 0) throw UserError("--train-subset: must be >= 0 (0: all; got " + num(double(o.train_subset)) + ")");
  if (o.test_subset < 0) throw UserError("--test-subset: must be >= 0 (0: all; got " + num(double(o.test_subset)) + ")");
  if (o.eval_batch < 1 || o.eval_batch > (1 << 20)) throw UserError("--eval-batch: must be in 1..1048576");
  if (o.checkpoint_every < 0) throw UserError("--checkpoint-every: must be >= 0");
  if (o.checkpoint_every > 0 && o.out.empty()) throw UserError("--checkpoint-every: needs --out DIR");
  if (o.fail_mode != "" && o.fail_mode != "kill" && o.fail_mode != "nan" && o.fail_mode != "error")
    throw UserError("--fail-mode: unknown value '" + o.fail_mode + "' (accepted: kill, nan, error)");
}

}  // namespace

namespace {

// The flags given as text, parsed after po::notify.
struct TextFlags {
  std::string hidden, protocol = "resist", allreduce = "ring", reduce = "chain", broadcast = "chain";
};

void add_train_options(boost::program_options::options_description& d, resist::runtime::TrainOptions& o,
                       TextFlags& t) {
  namespace po = boost::program_options;
  d.add_options()("help,h", "this help")
      ("protocol", po::value(&t.protocol)->default_value(t.protocol), resist::cli::protocol_choices().c_str())
      ("local-iters", po::value(&o.schedule.local_iters)->default_value(o.schedule.local_iters),
       "local iterations per round (ℓ; data-parallel: 1)");
  resist::cli::add_model_options(d, o.schedule.model, t.hidden);
  resist::cli::add_schedule_options(d, o.schedule);
  d.add_options()
      ("lp-beta", po::value(&o.lp_beta)->default_value(o.lp_beta),
       "layer-parallel: weight β of each stage's penalty (docs/layer-parallel.md)")
      ("lp-aux-step", po::value(&o.lp_aux_step)->default_value(o.lp_aux_step),
       "layer-parallel: γ in the auxiliary head's target y − γ·(N/β)·∂L/∂z, the previous stage's output moved "
       "along this stage's loss gradient at its input (0: the output itself; docs/layer-parallel.md)")
      ("schedule", po::value(&o.schedule_file), "walk this schedule file instead of generating one")
      ("data-dir", po::value(&o.data_dir), "dataset directory (default: fashion-mnist from Debian's package, "
                                           "cifar10: data/cifar-10-batches-bin, cifar100: data/cifar-100-binary; "
                                           "imagefolder, imagenet: DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg, "
                                           "default data/images, data/imagenet)")
      ("train-subset", po::value(&o.train_subset)->default_value(0),
       "use the first N training images (0: all; image folders: N spread over the classes)")
      ("test-subset", po::value(&o.test_subset)->default_value(0), "use the first N test images (0: all)")
      ("loader-threads", po::value(&o.loader_threads)->default_value(o.loader_threads),
       "threads decoding and augmenting batches ahead of the training step (0: on the training thread; "
       "-1: the cores the workers' intra-op threads leave free, per worker, at most 2)")
      ("prefetch", po::value(&o.prefetch)->default_value(o.prefetch), "batches built ahead of the training step")
      ("skip-bad-images", po::bool_switch(&o.skip_bad_images),
       "image folders: report, count and skip an undecodable image found while training (default: stop, exit 2)")
      ("no-image-check", po::bool_switch(),
       "image folders: skip the header check of every file before training")
      ("lr", po::value(&o.lr)->default_value(o.lr), "learning rate")
      ("momentum", po::value(&o.momentum)->default_value(o.momentum), "SGD momentum")
      ("weight-decay", po::value(&o.weight_decay)->default_value(o.weight_decay), "SGD weight decay")
      ("lr-schedule", po::value(&o.lr_schedule)->default_value(o.lr_schedule),
       "step (÷10 at 50% and 75% of training) | cosine")
      ("optimizer-state", po::value(&o.optimizer_state)->default_value(o.optimizer_state),
       "reset (re-create every round) | keep | auto (resist: reset, as the authors; others: keep)")
      ("eval-batch", po::value(&o.eval_batch)->default_value(o.eval_batch), "evaluation batch size")
      ("out", po::value(&o.out), "output directory: metrics.jsonl, report.json, timeline.json, model.pt")
      ("trace-all", po::bool_switch(&o.trace.all),
       "timeline.json: every round (default: all of a run up to 64 rounds; of a longer one the first and last 8 "
       "and about 48 evenly spaced)")
      ("checkpoint-every", po::value(&o.checkpoint_every)->default_value(0), "checkpoint every K rounds (needs --out)")
      ("resume", po::value(&o.resume), "continue from the checkpoints in this earlier --out directory")
      ("profile", po::value(&o.profile),
       "measure per-block forward/backward times, write this profile file, exit (under resist-launch -n N: N "
       "processes profile at once, the cores as busy as in a run of N ranks, and rank 0 writes the file)")
      ("timeout", po::value(&o.timeout_s)->default_value(o.timeout_s),
       "seconds to wait for a peer (rendezvous and every message) before failing")
      ("threads", po::value(&o.threads)->default_value(0), "intra-op threads (0: cores / local workers)")
      ("device", po::value(&o.device)->default_value(o.device), "cpu | cuda")
      ("backend", po::value(&o.backend)->default_value(o.backend), "auto (cuda: nccl, cpu: gloo) | gloo | nccl")
      ("allreduce", po::value(&t.allreduce)->default_value(t.allreduce), "gloo all-reduce: ring|tree|binomial|hd|hierarchical|auto")
      ("reduce", po::value(&t.reduce)->default_value(t.reduce), "gloo reduce: chain|tree|auto")
      ("broadcast", po::value(&t.broadcast)->default_value(t.broadcast), "gloo broadcast: chain|tree|auto")
      ("bucket-mb", po::value(&o.bucket_mb)->default_value(o.bucket_mb),
       "per-iteration gradient all-reduce (data-parallel, Gloo): buckets of this many MB all-reduced while "
       "backward runs, as PyTorch DDP (0: one all-reduce after backward)")
      ("check-sync", po::bool_switch(&o.check_sync), "after every sync, compare hashes of all shared copies")
      ("quiet", po::bool_switch(&o.quiet), "no progress on stderr")
      ("fail-at-round", po::value(&o.fail_round)->default_value(-1), "testing: inject a fault at this round")
      ("fail-rank", po::value(&o.fail_rank)->default_value(0), "testing: the rank that fails")
      ("fail-mode", po::value(&o.fail_mode)->default_value(""), "testing: kill | nan | error (a local exception)");
}

// The flags that need the parsed values (before anything starts).
void check_more_flags(const boost::program_options::variables_map& vm, resist::runtime::TrainOptions& o) {
  if (o.loader_threads < -1 || o.loader_threads > 256)
    throw resist::UserError("--loader-threads: must be in -1..256 (got " + std::to_string(o.loader_threads) + ")");
  if (o.prefetch < 1 || o.prefetch > 1024)
    throw resist::UserError("--prefetch: must be in 1..1024 (got " + std::to_string(o.prefetch) + ")");
  o.check_images = !vm["no-image-check"].as<bool>();
  if (const int size = o.schedule.model.image_size; size != 0 && (size < 16 || size > 2048))  // before any data
    throw resist::UserError("--image-size: must be in 16..2048 (got " + std::to_string(size) + ")");
  if (!(o.bucket_mb >= 0 && o.bucket_mb <= 65536))
    throw resist::UserError("--bucket-mb: must be in 0..65536 (got " + num(o.bucket_mb) + ")");
  resist::cli::reject_layer_parallel_flags(vm, o.schedule.protocol);
  if (!(o.lp_beta > 0 && o.lp_beta <= 1e6))
    throw resist::UserError("--lp-beta: must be in (0, 1000000] (got " + num(o.lp_beta) + ")");
  if (!(o.lp_aux_step >= 0 && o.lp_aux_step <= 100))
    throw resist::UserError("--lp-aux-step: must be in 0..100 (got " + num(o.lp_aux_step) + ")");
}

// The default --min-depth fits small models (preact-resnet18); an image
// folder's classes come from the data later, and do not change the depth.
void cap_min_depth(const boost::program_options::variables_map& vm, resist::runtime::TrainOptions& o) {
  if (!o.schedule_file.empty()) return;
  resist::ModelOptions m = o.schedule.model;
  if (m.classes == 0 && (m.dataset == "imagefolder")) m.classes = 2;
  resist::cli::cap_default_min_depth(vm, resist::build_model(m), o.schedule);
}

}  // namespace

int main(int argc, char** argv) {
  return resist::cli::guarded("resist-train", [&] {
    namespace po = boost::program_options;
    resist::runtime::TrainOptions o;
    o.argv.assign(argv, argv + argc);
    TextFlags t;
    po::options_description d("resist-train options");
    add_train_options(d, o, t);
    po::variables_map vm;
    if (!resist::cli::parse(argc, argv, d, vm,
                            "usage: resist-train [options]   (one worker; start N with resist-launch -n N -- "
                            "resist-train ... or torchrun --no-python --nproc-per-node=N resist-train ...)"))
      return 0;
    resist::cli::finish_model_options(o.schedule.model, t.hidden);
    o.schedule.protocol = resist::parse_protocol(t.protocol);
    o.collectives.allreduce = resist::parse_algorithm(resist::Collective::allreduce, t.allreduce, "--allreduce");
    o.collectives.reduce = resist::parse_algorithm(resist::Collective::reduce, t.reduce, "--reduce");
    o.collectives.broadcast = resist::parse_algorithm(resist::Collective::broadcast, t.broadcast, "--broadcast");
    check_more_flags(vm, o);
    check_flags(o);
    cap_min_depth(vm, o);
    if (!o.profile.empty()) return resist::runtime::profile(o);
    return resist::runtime::train(o);
  });
}
