#pragma once
// Command-line pieces shared by every resist program (Boost.Program_options).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "schedule/schedule.hpp"

namespace resist::cli {

namespace po = boost::program_options;

// Runs body(); a UserError or a bad flag prints "<program>: <message>" as one
// line on stderr and returns 2; any other exception (a fault, not bad input)
// prints one line and returns 1. --help is handled by the body.
int guarded(const std::string& program, const std::function<int()>& body);
// `text` as one printable line: newlines escaped, control bytes replaced,
// cut after max_chars (a message may quote a value read from a file).
std::string one_line(const std::string& text, std::size_t max_chars = 2000);

// "2,4,8" -> {2, 4, 8}; names the flag and the bad item on error.
std::vector<int> parse_int_list(const std::string& flag, const std::string& text);
std::vector<std::string> parse_list(const std::string& text);
std::vector<Protocol> parse_protocol_list(const std::string& flag, const std::string& text);
// The protocols --protocol accepts, for help texts: "data-parallel|local-sgd|...".
std::string protocol_choices();

// --model --block --base-width --dataset (--input --hidden --classes for MLPs)
void add_model_options(po::options_description& d, ModelOptions& m, std::string& hidden);
// Call after po::notify: fills the parts that need parsing.
void finish_model_options(ModelOptions& m, const std::string& hidden);

// --workers N (one per GPU; --machines is accepted as its older name)
void add_workers_option(po::options_description& d, int& workers, int default_workers);
// --workers 2,4,8 (a list; --machines is accepted as its older name)
void add_workers_list_option(po::options_description& d, std::string& workers);

// --min-depth --seed --batch-size --epochs --train-size --rounds --eval-every --ist-sync
// --stages --replicas --aux-width
void add_schedule_options(po::options_description& d, ScheduleConfig& c);

// --seed as a whole number 0..2^64-1, strictly ("-1" is refused, not wrapped).
po::typed_value<std::string>* seed_value(std::uint64_t& target);
std::uint64_t parse_seed(const std::string& flag, const std::string& text);

// The default --min-depth (4) is capped at the model's partitionable blocks
// (preact-resnet18 has fewer); an explicit value is left for validate().
void cap_default_min_depth(const po::variables_map& vm, const ModelSpec& spec, ScheduleConfig& c);

// --stages, --replicas, --aux-width (and resist-train's --lp-beta) given with
// a protocol other than layer-parallel: UserError naming the flag.
void reject_layer_parallel_flags(const po::variables_map& vm, Protocol p);

// Parses argv (argv[0] is the sub-command) into vm; returns false after
// printing help when --help (or -h, where defined) was given. A positional
// argument is an error.
bool parse(int argc, char** argv, const po::options_description& d, po::variables_map& vm,
           const std::string& usage);

}  // namespace resist::cli
