#pragma once
// The shared scheduling core: what happens in every round.
//
// A Schedule is a sequence of rounds. In each round every worker trains its
// (sub-)model for some local iterations, then the workers synchronise through
// an ordered list of communication operations. Both backends (sim/, runtime/)
// walk the same list in the same order; every rank takes part in the ops whose
// `ranks` contain it and skips the others. Nothing a backend does is decided
// outside this file's generator and the protocol rules in schedule/protocols/
// (one file per protocol; schedule/protocol.hpp is their interface).
//
// A backend reads only these structures: which blocks each worker trains
// (trained_blocks), whether a round evaluates (Round::evaluate), whether the
// optimizer starts afresh (Round::reset_optimizer), when an op runs
// (CommOp::phase), who holds its result (CommOp::holds_result) and what each
// worker keeps for the next round (RoundSource::held_after).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/spec.hpp"
#include "schedule/layer_parallel.hpp"

namespace resist {

class IstPlan;
class ProtocolRules;

enum class Protocol { data_parallel, local_sgd, resist, ist, layer_parallel };
const char* to_string(Protocol p);
Protocol parse_protocol(const std::string& s);  // throws UserError
const std::vector<std::string>& protocol_names();

enum class OpKind {
  allreduce,  // ring: reduce-scatter then all-gather over `ranks`, result averaged
  reduce,     // chain towards ranks[0] (the root); the root averages
  broadcast,  // pipelined chain from ranks[0] through ranks[1..]
  send,       // ranks = {source, destination}
};
const char* to_string(OpKind k);

// What an op's tensors are: gradients (data-parallel), parameters of shared
// blocks, parameters of a partitioned block being averaged, the aggregated
// block going to its next owners, or pieces gathered for evaluation.
// Layer-parallel training adds two: activations (a stage boundary's tensor,
// per iteration: `blocks` = {the block whose input it is}, `bytes` = batch ×
// that input's fp32 bytes per sample) and aux (an auxiliary head's
// parameters: `blocks` = {its target block}, schedule/layer_parallel.hpp).
enum class Payload { gradients, shared, partitioned, handoff, eval, activations, aux };
const char* to_string(Payload p);

// IST: a set of parameter elements of an MLP (see schedule/ist.hpp and
// docs/ist.md). `round` and `worker` are used by `trained` and `held` only.
enum class IstSetKind {
  shared,   // the parameters IST does not partition (the output layer's bias)
  all,      // every partitioned element (the whole model but `shared`)
  trained,  // what `worker` trains in `round` (its subnet, without `shared`)
  held,     // decentralised layout: what `worker` stores during `round`:
            // what it trains plus its home share of what nobody trains
};
const char* to_string(IstSetKind k);
struct IstSet {
  IstSetKind kind = IstSetKind::all;
  int round = -1, worker = -1;
  bool operator==(const IstSet&) const = default;
};
// The elements in both `from` and `to`: what the op carries (IST only).
struct IstPiece {
  IstSet from, to;
  bool operator==(const IstPiece&) const = default;
};

// When an op runs: after every local iteration's backward pass, on the
// gradients, before the optimizer step (data-parallel), or once at the end of
// the round on the parameters.
// Layer-parallel's activations are exchanged after the forward pass, before
// the losses and the backward pass (forward).
enum class Phase { iteration, round_end, forward };
const char* to_string(Phase p);

struct CommOp {
  OpKind kind = OpKind::allreduce;
  Payload payload = Payload::shared;
  std::vector<int> ranks;    // participants in algorithm order; root first
  std::vector<int> blocks;   // spec block indices carried, flattened in this order
  std::uint64_t bytes = 0;   // payload size M: fp32 bytes of `blocks` (of the piece, if any)
  // IST only: the op carries only these elements of `blocks`: for each block
  // in `blocks`, each of its parameters in spec order, the parameter's piece
  // elements in ascending flat (row-major) index; see ist_piece_indices().
  std::optional<IstPiece> piece;
  Phase phase = Phase::round_end;

  CommOp() = default;
  CommOp(OpKind k, Payload p, std::vector<int> r, std::vector<int> b, std::uint64_t m,
         std::optional<IstPiece> pc = std::nullopt)
      : kind(k), payload(p), ranks(std::move(r)), blocks(std::move(b)), bytes(m), piece(std::move(pc)) {}
  int root() const { return ranks.front(); }
  bool involves(int rank) const;
  // Whether `rank` holds the op's result afterwards: every participant of an
  // all-reduce, broadcast or send (the source keeps what it sent), only the
  // root of a reduce.
  bool holds_result(int rank) const;
};

struct WorkerRound {
  // Blocks this worker holds and trains this round besides the schedule's
  // shared blocks (ResIST: its partitionable blocks, in dealing order; IST:
  // every block, of which it trains the slice ist_worker_slices() gives).
  std::vector<int> blocks;
  // Layer-parallel: the block whose input this worker's auxiliary head
  // produces from the image (models/spec.hpp, aux_head); -1: no head.
  int aux_target = -1;
};

struct Round {
  int index = 0;
  int local_iters = 0;  // iterations every worker runs before the sync
  std::vector<WorkerRound> workers;
  std::vector<CommOp> sync;
  bool evaluate = false;         // rank 0 evaluates the model after the sync (always after the last round)
  bool reset_optimizer = false;  // every worker starts the round with a fresh optimizer
};

// IST synchronisation: decentralised exchange of disjoint pieces (with home
// storage for what nobody trains), or scatter/gather through rank 0.
enum class IstSync { decentralised, parameter_server };
const char* to_string(IstSync s);
IstSync parse_ist_sync(const std::string& s);  // throws UserError

// Optimizer state across rounds: the protocol's choice (automatic: ResIST
// and IST re-create it every round, the others keep it), or forced.
enum class OptimizerState { automatic, reset, keep };
const char* to_string(OptimizerState s);
OptimizerState parse_optimizer_state(const std::string& s);  // throws UserError

// What a worker stores between rounds: whole blocks (every ResNet protocol)
// or neuron slices of every block (IST, schedule/ist.hpp).
enum class Holding { blocks, slices };
const char* to_string(Holding h);

struct ScheduleConfig {
  Protocol protocol = Protocol::resist;
  ModelOptions model;
  int workers = 1;          // S
  int local_iters = 50;     // ℓ (data-parallel: always 1)
  int min_depth = 4;        // ResIST d_min
  std::uint64_t seed = 1;
  int batch_size = 128;     // per worker
  int epochs = 1;
  std::int64_t train_size = 50000;  // images in the training set
  int rounds = 0;           // > 0: exactly this many rounds instead of epochs' worth
  int eval_every = 0;       // > 0: gather the full model at rank 0 every this many rounds
  int warmup_epochs = 0;    // ResIST: local-SGD rounds (every worker trains the whole model) first
  IstSync ist_sync = IstSync::decentralised;  // IST only
  // Layer-parallel only (docs/layer-parallel.md): K stages × R replicas =
  // workers; stages 0: workers / replicas. Auxiliary heads `aux_width` wide.
  int stages = 0, replicas = 1, aux_width = 16;
  OptimizerState optimizer_state = OptimizerState::automatic;
};

struct Schedule {
  ScheduleConfig config;
  std::vector<int> shared_blocks;  // held and trained by every worker every round
  std::vector<double> eval_scale;  // per spec block: residual-branch scale at inference
  int iters_per_epoch = 0;         // per worker: ceil(train_size / (workers * batch))
  std::int64_t total_iters = 0;    // per worker, over the whole run
  Holding holding = Holding::blocks;
  // Layer-parallel: the split (consecutive blocks per stage).
  std::vector<Stage> stages;
  // Which training-data shard each worker reads (the stages of a replica
  // read the same batches); empty: worker w reads shard w of `workers`.
  std::vector<int> data_shard;
  int data_shards() const;       // number of shards
  int shard_of(int worker) const;
  std::vector<Round> rounds;
};

// Throws UserError for invalid values (workers < 1, min_depth > B, ...).
void validate(const ModelSpec& spec, const ScheduleConfig& config);

// Generates rounds lazily: round(r) depends only on the config and r, so long
// runs (tens of thousands of rounds) need not be held in memory.
class ScheduleGenerator {
 public:
  ScheduleGenerator(const ModelSpec& spec, const ScheduleConfig& config);
  int num_rounds() const { return num_rounds_; }
  // ResIST: rounds 0..warmup_rounds()-1 are local-SGD warm-up rounds.
  int warmup_rounds() const { return warmup_rounds_; }
  Round round(int r) const;
  // The blocks worker w holds in round r besides the shared ones. For r ==
  // num_rounds() (after the last round) rank 0 holds every block, everyone
  // else nothing: the final model is assembled at rank 0.
  std::vector<std::vector<int>> holdings(int r) const;
  const Schedule& header() const { return header_; }  // everything but rounds
  const ModelSpec& spec() const { return spec_; }
  // IST: the neuron partitions and pieces (schedule/ist.hpp); null otherwise.
  const IstPlan* ist() const;

 private:
  ModelSpec spec_;
  std::shared_ptr<ProtocolRules> rules_;
  Schedule header_;
  int num_rounds_ = 0;
  int warmup_rounds_ = 0;
};

// A schedule either generated round by round or read from a file: what both
// backends walk.
class RoundSource {
 public:
  RoundSource(const ModelSpec& spec, const ScheduleConfig& config);
  RoundSource(const ModelSpec& spec, Schedule file);
  const Schedule& header() const { return header_; }
  int num_rounds() const { return rounds_; }
  Round round(int r) const;
  // The blocks `rank` keeps once round r's sync is done: the shared blocks
  // plus what it trains in round r + 1; after the last round, rank 0 holds
  // the whole model and the others the shared blocks.
  std::vector<int> held_after(int r, int rank) const;
  // When workers hold neuron slices (IST): the partitions; null otherwise.
  const IstPlan* ist() const;

 private:
  ModelSpec spec_;
  std::shared_ptr<ScheduleGenerator> gen_;
  std::shared_ptr<const IstPlan> ist_;  // a file's IST plan
  Schedule file_, header_;
  int rounds_ = 0;
};

// The blocks `worker` trains in `round`: the schedule's shared blocks, then
// its own (Round::workers), in that order.
std::vector<int> trained_blocks(const Schedule& header, const Round& round, int worker);

Schedule make_schedule(const ModelSpec& spec, const ScheduleConfig& config);

// `c` for protocol `p`, without the layer-parallel-only settings when `p` is
// another protocol (sweeps and studies share one base config).
ScheduleConfig for_protocol(ScheduleConfig c, Protocol p);

// The local iterations per round a config actually runs (data-parallel: 1).
int effective_local_iters(const ScheduleConfig& config);

// After the last round the final model is assembled at rank 0: rank 0 holds
// every block that is not shared, the other ranks nothing besides the shared
// ones. `header` is a schedule's header (its shared_blocks).
std::vector<int> final_holding(const ModelSpec& spec, const Schedule& header, int rank);

// ResIST: how many partitionable blocks each sub-ResNet gets:
// k = max(ceil(B / S), d_min), capped at B.
int resist_blocks_per_worker(int partitionable, int workers, int min_depth);
// Deals random permutations of the B partitionable positions round-robin to S
// sub-ResNets until each has k; a position never goes twice to one sub-ResNet.
// Returned values are positions 0..B-1.
std::vector<std::vector<int>> resist_partition(int partitionable, int workers, int k,
                                               std::uint64_t seed, int round);

// Serialisation: {"format": "resist-schedule", "version": 2, ...}. Version-1
// files (before rounds stated evaluate/reset_optimizer and ops their phase)
// are rejected with a message saying to regenerate them.
nlohmann::json to_json(const Schedule& s);
Schedule schedule_from_json(const nlohmann::json& j);  // throws UserError naming the JSON path
void write_schedule_file(const Schedule& s, const std::string& path);  // atomic
Schedule read_schedule_file(const std::string& path);

}  // namespace resist
