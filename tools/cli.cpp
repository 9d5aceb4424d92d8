#include "tools/cli.hpp"

#include <algorithm>
#include <iostream>
#include <sstream>

#include "models/error.hpp"

namespace resist::cli {

std::string one_line(const std::string& text, std::size_t max_chars) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += ' ';
    else if ((unsigned char)c < 0x20 || c == 0x7f) out += '?';
    else out += c;
  }
  return out;
}

int guarded(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UserError& e) {
    std::cerr << program << ": " << one_line(e.what()) << "\n";
  } catch (const po::error& e) {
    std::cerr << program << ": " << one_line(e.what()) << " (see --help)\n";
  } catch (const std::bad_alloc&) {
    std::cerr << program << ": out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    // A fault, not bad input: still one line and a clean exit.
    std::cerr << program << ": internal error: " << one_line(e.what()) << "\n";
    return 1;
  }
  return kUserErrorExit;
}

std::vector<std::string> parse_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int> parse_int_list(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : parse_list(text)) {
    std::size_t used = 0;
    long v = 0;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1 || v > (1 << 20))
      throw UserError(flag + ": '" + item + "' is not a whole number in 1..1048576 (in '" + text + "')");
    out.push_back(int(v));
  }
  if (out.empty()) throw UserError(flag + ": needs at least one value (got '" + text + "')");
  return out;
}

std::string protocol_choices() {
  std::string s;
  for (const auto& n : protocol_names()) s += (s.empty() ? "" : "|") + n;
  return s;
}

std::vector<Protocol> parse_protocol_list(const std::string& flag, const std::string& text) {
  std::vector<Protocol> out;
  for (const auto& item : parse_list(text)) {
    try {
      out.push_back(parse_protocol(item));
    } catch (const UserError&) {
      std::string accepted;
      for (const auto& n : protocol_names()) accepted += (accepted.empty() ? "" : ", ") + n;
      throw UserError(flag + ": unknown protocol '" + item + "' (accepted: " + accepted + ")");
    }
  }
  if (out.empty()) throw UserError(flag + ": needs at least one protocol");
  return out;
}

// Both names write the same variable, so neither may have a Boost default
// (a defaulted --workers would overwrite --machines): the default is the
// variable's value beforehand, and the help text says it.
void add_workers_option(po::options_description& d, int& workers, int default_workers) {
  workers = default_workers;
  d.add_options()
      ("workers", po::value(&workers),
       ("workers: training processes, one per GPU (default " + std::to_string(default_workers) + ")").c_str())
      ("machines", po::value(&workers), "older name of --workers");
}

void add_workers_list_option(po::options_description& d, std::string& workers) {
  d.add_options()
      ("workers", po::value(&workers),
       ("comma-separated worker counts, one worker per GPU (default " + workers + ")").c_str())
      ("machines", po::value(&workers), "older name of --workers");
}

void add_model_options(po::options_description& d, ModelOptions& m, std::string& hidden) {
  d.add_options()
      ("model", po::value(&m.model)->default_value(m.model),
       "preact-resnet18|34|50|101|152|200, or mlp")
      ("block", po::value(&m.block)->default_value(m.block, "by depth"),
       "basic|bottleneck; by depth: basic below 50 layers, bottleneck from 50, so the default preact-resnet101 is "
       "the bottleneck network (preact-resnet101-bottleneck-w64-cifar100); the ResIST paper's is --block basic")
      ("base-width", po::value(&m.base_width)->default_value(m.base_width),
       "channels of the first section; sections use 1, 2, 4, 8 times this")
      ("dataset", po::value(&m.dataset)->default_value(m.dataset),
       "cifar10|cifar100|fashion-mnist|imagenet|imagefolder (fixes input shape and classes; imagefolder: "
       "a folder per class, classes from the data)")
      ("image-size", po::value(&m.image_size)->default_value(0),
       "imagenet, imagefolder: side of the square input in pixels (0: 224)")
      ("input", po::value(&m.input)->default_value(0), "MLP: input features (0: the dataset's)")
      ("hidden", po::value(&hidden)->default_value("4096"), "MLP: hidden layer sizes, e.g. 8192,4096")
      ("classes", po::value(&m.classes)->default_value(0),
       "output classes (0: the dataset's; MLPs, and imagefolder without data, e.g. in the simulator)");
}

void finish_model_options(ModelOptions& m, const std::string& hidden) {
  m.hidden = parse_int_list("--hidden", hidden);
}

void add_schedule_options(po::options_description& d, ScheduleConfig& c) {
  d.add_options()
      ("min-depth", po::value(&c.min_depth)->default_value(c.min_depth),
       "ResIST: minimum partitionable blocks per sub-ResNet (d_min)")
      ("seed", seed_value(c.seed), "seed of the partitions (0..18446744073709551615)")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size), "batch size per worker")
      ("epochs", po::value(&c.epochs)->default_value(c.epochs), "passes over the training set")
      ("train-size", po::value(&c.train_size)->default_value(c.train_size), "samples (images) in the training set")
      ("rounds", po::value(&c.rounds)->default_value(c.rounds), "if > 0: exactly this many rounds (overrides --epochs)")
      ("warmup-epochs", po::value(&c.warmup_epochs)->default_value(c.warmup_epochs),
       "ResIST: epochs of local SGD (whole model on every worker) before the first ResIST round")
      ("eval-every", po::value(&c.eval_every)->default_value(c.eval_every),
       "ResIST, IST: gather the full model at rank 0 every N rounds (0: only at the end)")
      ("ist-sync", po::value<std::string>()->default_value(to_string(c.ist_sync))
                       ->notifier([&c](const std::string& s) { c.ist_sync = parse_ist_sync(s); }),
       "IST: decentralised|parameter-server (scatter/gather through rank 0)")
      ("stages", po::value(&c.stages)->default_value(c.stages),
       "layer-parallel: stages K (2..blocks; 0: --workers / --replicas)")
      ("replicas", po::value(&c.replicas)->default_value(c.replicas),
       "layer-parallel: copies R of the K-stage group (K x R workers), averaged every --local-iters")
      ("aux-width", po::value(&c.aux_width)->default_value(c.aux_width),
       "layer-parallel: channels of the auxiliary heads");
}

void reject_layer_parallel_flags(const po::variables_map& vm, Protocol p) {
  if (p == Protocol::layer_parallel) return;
  for (const char* flag : {"stages", "replicas", "aux-width", "lp-beta", "lp-aux-step"})
    if (vm.count(flag) && !vm[flag].defaulted()) reject_layer_parallel_flag(std::string("--") + flag, to_string(p));
}

po::typed_value<std::string>* seed_value(std::uint64_t& target) {
  return po::value<std::string>()
      ->default_value(std::to_string(target))
      ->notifier([&target](const std::string& s) { target = parse_seed("--seed", s); });
}

std::uint64_t parse_seed(const std::string& flag, const std::string& text) {
  // std::stoull would take "-1" as 2^64-1: only digits are accepted.
  const std::string bad = flag + ": '" + text + "' is not a whole number in 0..18446744073709551615";
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    throw UserError(bad);
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    throw UserError(bad);
  }
}

void cap_default_min_depth(const po::variables_map& vm, const ModelSpec& spec, ScheduleConfig& c) {
  const auto it = vm.find("min-depth");
  if (it == vm.end() || !it->second.defaulted()) return;  // an explicit value is checked by validate()
  const int B = int(spec.partitionable.size());
  if (B > 0) c.min_depth = std::min(c.min_depth, B);
}

bool parse(int argc, char** argv, const po::options_description& d, po::variables_map& vm, const std::string& usage) {
  // No positional arguments: a stray word ("comm foo") is an error, not ignored.
  const auto parsed = po::command_line_parser(argc, argv).options(d).run();
  for (const auto& o : parsed.options)
    if (o.position_key >= 0 || (o.string_key.empty() && !o.original_tokens.empty()))
      throw UserError("unexpected argument '" + (o.original_tokens.empty() ? std::string() : o.original_tokens[0]) +
                      "' (options are --name VALUE; see --help)");
  po::store(parsed, vm);
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << d << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace resist::cli
