// resist-study: runs what-if studies (experiments/studies/*.json) and writes
// results, a report and figures.
//   resist-study run FILE.json [FILE.json ...] --out DIR
//   resist-study run --all [--studies DIR] --out DIR
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "experiments/study.hpp"
#include "models/error.hpp"
#include "tools/cli.hpp"
#include "schedule/json_util.hpp"

namespace fs = std::filesystem;
using namespace resist;

namespace {

const char* kUsage =
    "usage: resist-study run STUDY.json [STUDY.json ...] --out DIR\n"
    "       resist-study run --all [--studies DIR] [--skip KIND] --out DIR\n\n"
    "Runs what-if studies (see docs/studies.md): writes CSV/JSON results, report.md and figures (PNG, SVG) under\n"
    "DIR (one subdirectory per study when there are several), prints the headline tables and the report's path.\n"
    "--all runs every study in --studies (default: the source tree's experiments/studies); `validate` is skipped\n"
    "when the LibTorch runtime is not built. --skip KIND (repeatable) leaves a kind out of --all.\n";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

int run(int argc, char** argv) {
  std::vector<std::string> files, skip;
  std::string out, studies_dir = std::string(RESIST_SOURCE_DIR) + "/experiments/studies";
  bool all = false;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UserError(std::string(flag) + ": needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--out") out = value("--out");
    else if (a == "--all") all = true;
    else if (a == "--studies") studies_dir = value("--studies");
    else if (a == "--skip") skip.push_back(value("--skip"));
    else if (a.rfind("--", 0) == 0) throw UserError(a + ": unknown option (accepted: --out, --all, --studies, --skip, --help)");
    else files.push_back(a);
  }
  if (out.empty()) throw UserError("--out: required (a directory for results, report and figures)");
  if (all == !files.empty()) throw UserError("run: give study files or --all (not both, not neither)");
  if (all) {
    if (!fs::is_directory(studies_dir)) throw UserError("--studies: '" + studies_dir + "' is not a directory");
    for (const auto& e : fs::directory_iterator(studies_dir))
      if (e.path().extension() == ".json") files.push_back(e.path().string());
    if (files.empty()) throw UserError("--studies: no *.json in '" + studies_dir + "'");
  }
  study::Paths paths;
  paths.analysis_dir = env_or("RESIST_ANALYSIS_DIR", std::string(RESIST_SOURCE_DIR) + "/analysis");
  paths.python = env_or("RESIST_PYTHON", "/usr/bin/python3");
  paths.runtime_dir = env_or("RESIST_RUNTIME_DIR", std::string(RESIST_BINARY_DIR) + "/runtime");

  // Read and check everything before running anything.
  std::vector<study::Study> studies;
  for (const auto& f : files) {
    study::Study s = study::read_study(f);
    if (std::find(skip.begin(), skip.end(), study::to_string(s.kind)) != skip.end()) continue;
    studies.push_back(std::move(s));
  }
  std::stable_sort(studies.begin(), studies.end(), [](const auto& a, const auto& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.name < b.name;
  });
  for (std::size_t i = 0; i < studies.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (studies[i].name == studies[j].name)
        throw UserError(studies[i].path + ": name: '" + studies[i].name + "' is also the name of " + studies[j].path);
  for (const auto& s : studies)
    if (s.kind == study::Kind::validate && !all && !study::runtime_available(paths))
      throw UserError(s.path + ": kind: validate needs the LibTorch runtime (resist-train, resist-launch in '" +
                      paths.runtime_dir + "'), which is not built");

  const bool several = studies.size() > 1;
  std::string report = "# resist study report\n\n";
  std::vector<std::pair<study::Kind, study::Outcome>> outcomes;
  for (const auto& s : studies) {
    const std::string dir = several ? out + "/" + s.name : out;
    if (s.kind == study::Kind::validate && !study::runtime_available(paths)) {
      std::fprintf(stderr, "study %s: skipped (the LibTorch runtime is not built)\n", s.name.c_str());
      report += "## " + s.name + " (`validate`)\n\nSkipped: the LibTorch runtime (`resist-train`, `resist-launch`) "
                "is not built here.\n\n";
      continue;
    }
    study::Outcome o = study::run_study(s, dir, paths);
    std::string section = o.report_md;
    if (several) {  // figure links relative to the combined report
      for (std::size_t p = 0; (p = section.find("](figures/", p)) != std::string::npos; p += 2)
        section.replace(p, 2, "](" + s.name + "/");
    }
    report += section;
    outcomes.emplace_back(s.kind, std::move(o));
  }
  if (several) json_util::write_atomic(out + "/report.md", report);

  // The communication table and the speedup table come last, just above the
  // report's path: they are what a reader looks for first.
  auto rank = [](study::Kind k) {
    return k == study::Kind::table1 ? 1 : k == study::Kind::paper_cifar ? 2 : 0;
  };
  std::stable_sort(outcomes.begin(), outcomes.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  for (const auto& [kind, o] : outcomes)
    for (const auto& [title, md] : o.tables) {
      std::cout << "\n" << title << "\n";
      if (!md.empty()) std::cout << "\n" << md;
    }
  std::cout << "\nreport: " << fs::absolute(out + "/report.md").lexically_normal().string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    (argc < 2 ? std::cerr : std::cout) << kUsage;
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "run") != 0) {
    std::cerr << "resist-study: unknown command '" << argv[1] << "' (accepted: run)\n";
    return 2;
  }
  return cli::guarded("resist-study", [&] { return run(argc, argv); });
}
