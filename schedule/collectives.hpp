#pragma once
// Every collective algorithm, defined once: its steps, i.e. who sends which
// elements to whom, in which order. Three readers use these definitions and
// nothing else:
//   - the accounting (schedule/accounting.cpp) sums the bytes of the steps;
//   - the simulator (sim/engine.cpp) executes the steps on SimGrid, or replays
//     them on the α–β model when no two messages can share a link;
//   - the runtime (runtime/p2p_comm.cpp) sends exactly these messages over Gloo.
//
// A plan works on positions 0..n-1 of an op's rank list (position 0 is the
// root) and on a flat buffer of `elements` fp32 values per rank. A step is a
// set of transfers; a rank's part of a step is: post its sends, post its
// receives, wait for all of them, then combine what it received (add or copy
// into the same element range). A rank skips the steps it has no part in; no
// rank ever waits for a step it does not take part in. In every algorithm
// below a rank sends at most one message and receives at most one per step.
//
// Algorithms (n ranks, M = 4·elements bytes, C = ⌈M / chunk_bytes⌉ chunks):
//   allreduce  ring          reduce-scatter then all-gather, 2(n-1) steps; at
//                            step s position i sends ring_chunk (i-s) mod n,
//                            then (i+1-s) mod n, to i+1
//              tree          double binary tree (as NCCL's): two binary trees,
//                            each position interior in at most one of them,
//                            each tree reducing then broadcasting half of the
//                            buffer in C = ⌈(M/2) / chunk_bytes⌉ pipelined chunks
//                            (DoubleTree in collectives.cpp)
//              binomial      binomial-tree reduce to position 0, then binomial
//                            broadcast from it: 2⌈log2 n⌉ steps of M
//              hd            recursive halving-doubling (Rabenseifner) over the
//                            largest power of two p ≤ n; the other n-p ranks
//                            first hand their buffer to a partner and get the
//                            result back at the end
//              hierarchical  per node: binomial reduce to the node's first
//                            rank; ring all-reduce among those leaders; per
//                            node: binomial broadcast from the leader
//   reduce     chain         pipelined chain n-1 -> n-2 -> ... -> 0 in C chunks
//              tree          binomial tree towards position 0, ⌈log2 n⌉ steps of M
//   broadcast  chain         pipelined chain 0 -> 1 -> ... -> n-1 in C chunks
//              tree          binomial tree from position 0
//   allgather      ring      position i starts with ring_chunk i, n-1 steps
//   reduce_scatter ring      position i ends with ring_chunk i summed, n-1 steps
//   send                     one message, position 0 -> 1
// Nodes (hierarchical, auto): world rank r is on node r / ranks_per_node.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "schedule/schedule.hpp"

namespace resist {

// The collectives a plan can describe: the schedule's four op kinds plus the
// two halves of a ring all-reduce (for `resist-sim collective`).
enum class Collective { allreduce, reduce, broadcast, send, allgather, reduce_scatter };
const char* to_string(Collective c);
Collective parse_collective(const std::string& s);  // throws UserError
Collective collective_of(OpKind k);

// `tree` is the double binary tree for an all-reduce and the binomial tree for
// a reduce or broadcast; `binomial` the binomial all-reduce.
enum class Algorithm { automatic, ring, tree, hd, hierarchical, chain, direct, binomial };
const char* to_string(Algorithm a);
// The algorithms `c` accepts (without "auto"); the first is the default.
const std::vector<Algorithm>& algorithms_for(Collective c);
// "auto" or one of algorithms_for(c); the flag names the error.
Algorithm parse_algorithm(Collective c, const std::string& s, const std::string& flag);

struct CollectiveOptions {
  Algorithm allreduce = Algorithm::ring;
  Algorithm reduce = Algorithm::chain;
  Algorithm broadcast = Algorithm::chain;
  std::uint64_t chunk_bytes = 4u << 20;  // pipelining chunk of chains
  int ranks_per_node = 1;                 // hierarchical and auto: node of rank r = r / ranks_per_node
  // α–β figures that `auto` compares algorithms with: the latency and
  // bandwidth of a route between two nodes, and within one node.
  double inter_latency_s = 100e-6, inter_bandwidth_Bps = 1.25e9;
  double intra_latency_s = 10e-6, intra_bandwidth_Bps = 25e9;
};

// One message: position src sends elements [offset, offset + count) of its
// buffer to position dst, which adds them into (add) or copies them to the
// same range of its own buffer.
struct Transfer {
  int src = 0, dst = 0;
  std::uint64_t offset = 0, count = 0;
  bool add = false;
};

// The chunk c of n over `elements`: the first elements % n chunks get one more.
struct Chunk {
  std::uint64_t offset = 0, count = 0;  // in elements
};
Chunk ring_chunk(std::uint64_t elements, int n, int c);
// Ring all-reduce: bytes position i sends. Reduce-scatter step s sends chunk
// (i - s) mod n and all-gather step s chunk (i + 1 - s) mod n, s = 0..n-2:
// every chunk but (i + 1) mod n, then every chunk but (i + 2) mod n.
std::vector<std::uint64_t> ring_allreduce_bytes_sent(std::uint64_t elements, int n);
// C for a chain: ⌈elements / (chunk_bytes / 4)⌉, at least 1.
int chain_chunks(std::uint64_t elements, std::uint64_t chunk_bytes);
// C for each half of a double binary tree: chain_chunks(⌈elements / 2⌉, chunk_bytes).
int double_tree_chunks(std::uint64_t elements, std::uint64_t chunk_bytes);
// The double binary tree all-reduce's time on an idle α–β network, in
// messages of one chunk (α + M/(2C·B) each): n = 2: 2C; otherwise, with
// k = ⌊log2 n⌋, R = 2k - 1 (2k when n + 1 is a power of two) and
// δ = 1 when C = 1, k ≥ 3 and n ≤ 2^k + 2^(k-1) - 2 (else 0):
// 4(C - 1) + 2R - 2δ. (The plan has 2(2(C - 1) + R) steps. A message starts
// when its two ends are ready, not at its step's turn; with one chunk and the
// last heap level all under the root's left child, that gains two messages.)
int double_tree_message_times(int n, int chunks);

class StepSource;  // one algorithm's steps (collectives.cpp)

class CollectivePlan {
 public:
  // `ranks`: the op's world ranks in algorithm order (root first). `algorithm`
  // may be automatic (resolved by choose_algorithm) and must suit `c`.
  CollectivePlan(Collective c, Algorithm algorithm, const std::vector<int>& ranks, std::uint64_t elements,
                 const CollectiveOptions& options);
  // The schedule's op with the options' algorithm for its kind.
  CollectivePlan(const CommOp& op, const CollectiveOptions& options);

  Collective collective() const { return collective_; }
  Algorithm algorithm() const { return algorithm_; }
  const std::vector<int>& ranks() const { return ranks_; }
  int size() const { return int(ranks_.size()); }
  std::uint64_t elements() const { return elements_; }
  int steps() const;
  // Appends to `out` the transfers of step k: all of them (position < 0) or
  // those that position sends or receives.
  void transfers(int k, int position, std::vector<Transfer>& out) const;
  // Bytes each position sends (receives) over the whole plan. The ring
  // all-reduce is summed in closed form (O(n), not O(n²): 100,000 ranks take
  // milliseconds); every other plan step by step.
  std::vector<std::uint64_t> bytes_sent() const;
  std::vector<std::uint64_t> bytes_received() const;

 private:
  Collective collective_;
  Algorithm algorithm_;
  std::vector<int> ranks_;
  std::uint64_t elements_;
  std::shared_ptr<const StepSource> source_;
};

// The algorithm the options name for c (allreduce, reduce, broadcast), or c's only one.
Algorithm configured_algorithm(Collective c, const CollectiveOptions& options);

// `auto`: the algorithm for collective c over `ranks` carrying `bytes`:
// hierarchical for an all-reduce whose ranks span several nodes with more than
// one rank on some node; otherwise the candidate with the least α–β time
// (alpha_beta_s) on the inter-node route (intra-node when all ranks share a node).
Algorithm choose_algorithm(Collective c, const std::vector<int>& ranks, std::uint64_t bytes,
                           const CollectiveOptions& options);
// The α–β time of an algorithm when every message takes α + bytes/B and no
// two share a link: e.g. ring all-reduce 2(n-1)·α + 2(n-1)/n·M/B. Not for
// hierarchical (two kinds of route).
double alpha_beta_s(Collective c, Algorithm a, int n, std::uint64_t bytes, double alpha_s, double bandwidth_Bps,
                    std::uint64_t chunk_bytes);

}  // namespace resist
