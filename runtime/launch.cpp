// resist-launch -n N [--nnodes M --node-rank K --master-addr A] [--master-port P] -- PROGRAM ARGS...
// Starts N local workers with torchrun's environment (MASTER_ADDR,
// MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK);
// with --nnodes M, this machine is node K of M and its workers are ranks
// K*N .. K*N+N-1 of M*N (every node runs the same command but --node-rank). It prefixes
// their output lines with "[rank K] ", forwards Ctrl-C / SIGTERM / SIGHUP
// (workers also die with the launcher when it is killed), and as soon
// as one worker fails stops the others and exits non-zero, naming the rank.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

const char* kUsage =
    "usage: resist-launch -n N [--nnodes M --node-rank K --master-addr HOST] [--master-port P] [--grace S]\n"
    "                     -- PROGRAM [ARGS...]\n"
    "  starts N local workers of PROGRAM (e.g. resist-train) with torchrun's environment;\n"
    "  --nnodes/--node-rank: this machine is node K (0..M-1) of M, each running N workers; ranks\n"
    "  K*N..K*N+N-1 run here; --master-addr: the host of rank 0, which serves the rendezvous\n"
    "  (default 127.0.0.1); --master-port: its port 1..65535 (default: a free one; needed with M > 1);\n"
    "  --grace: seconds the others get to exit after a failure before they are killed (default 5)\n";

// Bad usage: one line on stderr, exit code 2; --help: the usage on stdout.
int usage(const char* msg) {
  if (!msg) {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "resist-launch: " << msg << " (see --help)\n";
  return 2;
}

// The whole of `text` as an integer in lo..hi, or false.
bool whole_number(const std::string& text, long lo, long hi, long& out) {
  std::size_t used = 0;
  try {
    out = std::stol(text, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == text.size() && out >= lo && out <= hi;
}

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (s >= 0) ::close(s);
    return 29500;
  }
  const int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

struct Stream {
  int fd = -1;
  int rank = 0;
  bool err = false;
  std::string pending;
};

void emit(Stream& s, bool flush_all) {
  std::string::size_type nl;
  std::ostream& out = s.err ? std::cerr : std::cout;
  while ((nl = s.pending.find('\n')) != std::string::npos) {
    out << "[rank " << s.rank << "] " << s.pending.substr(0, nl + 1);
    s.pending.erase(0, nl + 1);
  }
  // A progress line rewritten with '\r' arrives without '\n': pass it on.
  if (flush_all && !s.pending.empty()) {
    out << "[rank " << s.rank << "] " << s.pending << "\n";
    s.pending.clear();
  }
  out.flush();
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                  strsignal(WTERMSIG(status)) + ")";
  return "stopped";
}

// The launcher's own flags, before `--`.
struct LaunchArgs {
  int n = 0, port = 0, nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  double grace_s = 5;
  int program = 0;  // argv index of PROGRAM
};

bool known_flag(const std::string& a) {
  return a == "-n" || a == "--nproc" || a == "--nproc-per-node" || a == "--nnodes" || a == "--node-rank" ||
         a == "--master-addr" || a == "--master-port" || a == "--grace";
}

// Sets flag `a` (known, dashes normalised) to `value`: "" or the error
// message. Throws std::exception for a value std::stod cannot read.
std::string set_flag(const std::string& a, const std::string& value, LaunchArgs& args) {
  long number = 0;
  if (a == "-n" || a == "--nproc" || a == "--nproc-per-node") {
    if (!whole_number(value, 1, 4096, number)) return "-n: must be a whole number in 1..4096 (got '" + value + "')";
    args.n = int(number);
  } else if (a == "--nnodes") {
    if (!whole_number(value, 1, 4096, number))
      return "--nnodes: must be a whole number in 1..4096 (got '" + value + "')";
    args.nnodes = int(number);
  } else if (a == "--node-rank") {
    if (!whole_number(value, 0, 4095, number)) return "--node-rank: must be a whole number (got '" + value + "')";
    args.node_rank = int(number);
  } else if (a == "--master-addr") {
    args.master_addr = value;
  } else if (a == "--master-port") {
    if (!whole_number(value, 1, 65535, number))
      return "--master-port: must be a port in 1..65535 (got '" + value + "')";
    args.port = int(number);
  } else if (a == "--grace") {
    std::size_t used = 0;
    args.grace_s = std::stod(value, &used);
    if (used != value.size() || !(args.grace_s >= 0 && args.grace_s <= 3600))
      return "--grace: must be seconds in 0..3600 (got '" + value + "')";
  } else {
    return "unknown argument '" + a + "' (put the program after --)";
  }
  return "";
}

// The flags taken together: "" or the error message.
std::string check_args(const LaunchArgs& a, int argc) {
  if (a.n < 1) return "-n: required, the number of workers (1..4096)";
  if (a.nnodes < 1 || a.nnodes > 4096) return "--nnodes: must be in 1..4096 (got " + std::to_string(a.nnodes) + ")";
  if (a.node_rank < 0 || a.node_rank >= a.nnodes)
    return "--node-rank: must be in 0.." + std::to_string(a.nnodes - 1) + " (got " + std::to_string(a.node_rank) + ")";
  if (a.master_addr.empty()) return "--master-addr: must not be empty";
  if (a.nnodes > 1 && a.port <= 0) return "--master-port: needed with --nnodes > 1 (every node must use the same)";
  if (a.program >= argc) return "no program given after --";
  return "";
}

// Parses argv up to `--`. Returns -1 to go on, else the exit code (--help:
// 0 with the usage on stdout; bad usage: 2 with one line on stderr).
int parse_args(int argc, char** argv, LaunchArgs& args) {
  int i = 1;
  std::string bad;  // the value being parsed and its flag
  try {
    for (; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--") {
        ++i;
        break;
      }
      if (a == "-h" || a == "--help") return usage(nullptr);
      // torchrun's spellings too: --name=value, and underscores for dashes.
      std::string inline_value;
      const bool has_inline = a.rfind("--", 0) == 0 && a.find('=') != std::string::npos;
      if (has_inline) {
        inline_value = a.substr(a.find('=') + 1);
        a.erase(a.find('='));
      }
      std::replace(a.begin() + std::min<std::size_t>(2, a.size()), a.end(), '_', '-');
      if (!known_flag(a)) return usage(("unknown argument '" + a + "' (put the program after --)").c_str());
      if (!has_inline && i + 1 >= argc) return usage((a + ": needs a value").c_str());
      const std::string value = has_inline ? inline_value : argv[++i];
      bad = "'" + value + "' for " + a;
      if (const std::string err = set_flag(a, value, args); !err.empty()) return usage(err.c_str());
    }
  } catch (const std::exception&) {
    return usage(("bad value " + bad).c_str());
  }
  args.program = i;
  if (const std::string err = check_args(args, argc); !err.empty()) return usage(err.c_str());
  return -1;
}

// Tells this run's workers apart from another run's on the same port. The
// nodes of one multi-node run must agree on it: they share the rendezvous
// address (a second run there is still refused by the rank claims).
std::string make_run_id(const LaunchArgs& a, pid_t launcher) {
  const char* given_id = std::getenv("RESIST_RUN_ID");
  if (given_id && *given_id) return given_id;
  if (a.nnodes > 1) return "launch-nodes-" + a.master_addr + ":" + std::to_string(a.port);
  return "launch-" + std::to_string(launcher) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
}

// In the forked child: becomes local worker r, with torchrun's environment.
[[noreturn]] void exec_worker(const LaunchArgs& a, int r, char** argv, const std::string& run_id, pid_t launcher,
                              int out[2], int err[2]) {
  // A worker dies with the launcher, even one killed by SIGKILL (the
  // setting survives exec); getppid() covers a launcher gone already.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != launcher) ::_exit(1);
  ::setpgid(0, 0);  // its own process group, so that stopping it stops its children too
  ::dup2(out[1], 1);
  ::dup2(err[1], 2);
  ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGHUP, SIG_DFL);
  std::signal(SIGPIPE, SIG_DFL);
  ::setenv("MASTER_ADDR", a.master_addr.c_str(), 1);
  ::setenv("MASTER_PORT", std::to_string(a.port).c_str(), 1);
  ::setenv("RANK", std::to_string(a.node_rank * a.n + r).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(a.nnodes * a.n).c_str(), 1);
  ::setenv("LOCAL_WORLD_SIZE", std::to_string(a.n).c_str(), 1);
  ::setenv("GROUP_RANK", std::to_string(a.node_rank).c_str(), 1);
  ::setenv("GROUP_WORLD_SIZE", std::to_string(a.nnodes).c_str(), 1);
  ::setenv("RESIST_RUN_ID", run_id.c_str(), 1);
  ::execvp(argv[a.program], argv + a.program);
  std::cerr << "resist-launch: cannot run '" << argv[a.program] << "': " << std::strerror(errno) << "\n";
  ::_exit(127);
}

// The running workers: their pids and output streams, and what happens
// when one fails or a signal arrives. run() is the launcher's loop.
class Supervisor {
 public:
  explicit Supervisor(const LaunchArgs& a) : first_rank_(a.node_rank * a.n), grace_s_(a.grace_s) {}

  // Forks and execs local worker r. False (with a message) if no pipe.
  bool spawn(const LaunchArgs& a, int r, char** argv, const std::string& run_id, pid_t launcher) {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) {
      std::cerr << "resist-launch: pipe: " << std::strerror(errno) << "\n";
      return false;
    }
    const pid_t pid = ::fork();
    if (pid == 0) exec_worker(a, r, argv, run_id, launcher, out, err);
    ::setpgid(pid, pid);
    ::close(out[1]);
    ::close(err[1]);
    pids_.push_back(pid);
    done_.push_back(false);
    streams_.push_back({out[0], first_rank_ + r, false, {}});
    streams_.push_back({err[0], first_rank_ + r, true, {}});
    return true;
  }

  // Until every worker has exited and its output is drained (for at most a
  // second after the last exit: a grandchild may still hold a pipe open).
  int run() {
    alive_ = int(pids_.size());
    auto drain_until = Clock::time_point::max();
    while (alive_ > 0 || (open_streams() && Clock::now() < drain_until)) {
      if (alive_ == 0 && drain_until == Clock::time_point::max()) drain_until = Clock::now() + std::chrono::seconds(1);
      forward_signal();
      pump_output();
      reap();
      if (stopping_ && alive_ > 0 && Clock::now() > stop_deadline_) {
        signal_all(SIGKILL);
        stop_deadline_ = Clock::now() + std::chrono::hours(1);
      }
    }
    if (failed_rank_ >= 0)
      std::cerr << "resist-launch: failed: rank " << failed_rank_ << " " << "(exit code " << exit_code_ << ")\n";
    return exit_code_;
  }

 private:
  using Clock = std::chrono::steady_clock;

  bool open_streams() const {
    return std::any_of(streams_.begin(), streams_.end(), [](const Stream& s) { return s.fd >= 0; });
  }
  void signal_all(int sig) {
    for (std::size_t r = 0; r < pids_.size(); ++r)
      if (!done_[r]) ::kill(-pids_[r], sig);
  }
  void start_stopping() {
    stopping_ = true;
    stop_deadline_ = Clock::now() + std::chrono::milliseconds(long(grace_s_ * 1000));
  }

  // Ctrl-C, SIGTERM or SIGHUP on the launcher: passed on once.
  void forward_signal() {
    if (!g_signal || forwarded_) return;
    std::cerr << "resist-launch: got " << strsignal(g_signal) << ", passing it on to the workers\n";
    signal_all(g_signal);
    forwarded_ = true;
    if (!stopping_) {
      start_stopping();
      exit_code_ = 128 + g_signal;
    }
  }

  // Waits up to 0.1 s for output, then copies what arrived, line by line.
  void pump_output() {
    fds_.clear();
    for (const auto& s : streams_)
      if (s.fd >= 0) fds_.push_back({s.fd, POLLIN, 0});
    if (!fds_.empty()) ::poll(fds_.data(), fds_.size(), 100);
    else ::usleep(100000);
    for (auto& s : streams_) {
      if (s.fd < 0) continue;
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) continue;
      char buf[8192];
      const ssize_t k = ::read(s.fd, buf, sizeof buf);
      if (k > 0) {
        s.pending.append(buf, std::size_t(k));
        emit(s, false);
      } else if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) {
        emit(s, true);
        ::close(s.fd);
        s.fd = -1;
      }
    }
  }

  // Collects exited workers; the first failure stops the others. Of the
  // failures collected together, a worker killed by a signal is named first:
  // its peers' errors ("connection reset") are its consequence.
  void reap() {
    int status = 0;
    pid_t pid;
    int failed = -1, failed_status = 0;
    pid_t failed_pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      const auto it = std::find(pids_.begin(), pids_.end(), pid);
      if (it == pids_.end()) continue;
      const int r = int(it - pids_.begin());
      done_[std::size_t(r)] = true;
      --alive_;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && (failed < 0 || (WIFSIGNALED(status) && !WIFSIGNALED(failed_status))))
        failed = r, failed_status = status, failed_pid = pid;
    }
    if (failed < 0 || failed_rank_ >= 0 || forwarded_) return;
    failed_rank_ = first_rank_ + failed;
    exit_code_ = WIFEXITED(failed_status) ? WEXITSTATUS(failed_status) : 128 + WTERMSIG(failed_status);
    std::cerr << "resist-launch: rank " << failed_rank_ << " (pid " << failed_pid << ") " << describe(failed_status)
              << "; stopping the other workers\n";
    signal_all(SIGTERM);
    start_stopping();
  }

  int first_rank_;
  double grace_s_;
  std::vector<pid_t> pids_;
  std::vector<bool> done_;
  std::vector<Stream> streams_;
  std::vector<pollfd> fds_;
  int failed_rank_ = -1, exit_code_ = 0, alive_ = 0;
  bool stopping_ = false, forwarded_ = false;
  Clock::time_point stop_deadline_ = Clock::now();
};

}  // namespace

int main(int argc, char** argv) {
  LaunchArgs args;
  if (const int code = parse_args(argc, argv, args); code >= 0) return code;
  if (args.port <= 0) args.port = free_port();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  const pid_t launcher = ::getpid();
  const std::string run_id = make_run_id(args, launcher);
  Supervisor workers(args);
  for (int r = 0; r < args.n; ++r)
    if (!workers.spawn(args, r, argv, run_id, launcher)) return 1;
  return workers.run();
}
