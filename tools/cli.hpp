#pragma once
// Command-line pieces shared by every resist program (Boost.Program_options).
#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "schedule/schedule.hpp"

namespace resist::cli {

namespace po = boost::program_options;

// Runs body(); a UserError or a bad flag prints "<program>: <message>" as one
// line on stderr and returns 2; --help is handled by the body.
int guarded(const std::string& program, const std::function<int()>& body);

// "2,4,8" -> {2, 4, 8}; names the flag and the bad item on error.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text);
std::vector<std::string> parse_list(const std::string& text);
std::vector<Protocol> parse_protocol_list(const std::string& flag, const std::string& text);

// --model --block --base-width --dataset (--input --hidden --classes for MLPs)
void add_model_options(po::options_description& d, ModelOptions& m, std::string& hidden);
// Call after po::notify: fills the parts that need parsing.
void finish_model_options(ModelOptions& m, const std::string& hidden);

// --min-depth --seed --batch-size --epochs --train-size --rounds --eval-every --ist-sync
// --stages --replicas --aux-width
void add_schedule_options(po::options_description& d, ScheduleConfig& c);

// --stages, --replicas, --aux-width (and resist-train's --lp-beta) given with
// a protocol other than layer-parallel: UserError naming the flag.
void reject_layer_parallel_flags(const po::variables_map& vm, Protocol p);

// Parses argv (argv[0] is the sub-command) into vm; returns false after
// printing help when --help was given.
bool parse(int argc, char** argv, const po::options_description& d, po::variables_map& vm,
           const std::string& usage);

}  // namespace resist::cli
