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

}  // namespace

int main(int argc, char** argv) {
  int n = 0, port = 0, nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  double grace_s = 5;
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
      const bool known = a == "-n" || a == "--nproc" || a == "--nproc-per-node" || a == "--nnodes" ||
                         a == "--node-rank" || a == "--master-addr" || a == "--master-port" || a == "--grace";
      if (!known) return usage(("unknown argument '" + a + "' (put the program after --)").c_str());
      if (!has_inline && i + 1 >= argc) return usage((a + ": needs a value").c_str());
      const std::string value = has_inline ? inline_value : argv[++i];
      bad = "'" + value + "' for " + a;
      long number = 0;
      if (a == "-n" || a == "--nproc" || a == "--nproc-per-node") {
        if (!whole_number(value, 1, 4096, number)) return usage(("-n: must be a whole number in 1..4096 (got '" + value + "')").c_str());
        n = int(number);
      } else if (a == "--nnodes") {
        if (!whole_number(value, 1, 4096, number)) return usage(("--nnodes: must be a whole number in 1..4096 (got '" + value + "')").c_str());
        nnodes = int(number);
      } else if (a == "--node-rank") {
        if (!whole_number(value, 0, 4095, number)) return usage(("--node-rank: must be a whole number (got '" + value + "')").c_str());
        node_rank = int(number);
      } else if (a == "--master-addr") {
        master_addr = value;
      } else if (a == "--master-port") {
        if (!whole_number(value, 1, 65535, number)) return usage(("--master-port: must be a port in 1..65535 (got '" + value + "')").c_str());
        port = int(number);
      } else if (a == "--grace") {
        std::size_t used = 0;
        grace_s = std::stod(value, &used);
        if (used != value.size() || !(grace_s >= 0 && grace_s <= 3600))
          return usage(("--grace: must be seconds in 0..3600 (got '" + value + "')").c_str());
      } else {
        return usage(("unknown argument '" + a + "' (put the program after --)").c_str());
      }
    }
  } catch (const std::exception&) {
    return usage(("bad value " + bad).c_str());
  }
  if (n < 1) return usage("-n: required, the number of workers (1..4096)");
  if (nnodes < 1 || nnodes > 4096)
    return usage(("--nnodes: must be in 1..4096 (got " + std::to_string(nnodes) + ")").c_str());
  if (node_rank < 0 || node_rank >= nnodes)
    return usage(("--node-rank: must be in 0.." + std::to_string(nnodes - 1) + " (got " + std::to_string(node_rank) +
                  ")").c_str());
  if (master_addr.empty()) return usage("--master-addr: must not be empty");
  if (nnodes > 1 && port <= 0) return usage("--master-port: needed with --nnodes > 1 (every node must use the same)");
  if (i >= argc) return usage("no program given after --");
  if (port <= 0) port = free_port();
  const int first_rank = node_rank * n, world = nnodes * n;

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  const pid_t launcher = ::getpid();
  // Tells this run's workers apart from another run's on the same port. The
  // nodes of one multi-node run must agree on it: they share the rendezvous
  // address (a second run there is still refused by the rank claims).
  const char* given_id = std::getenv("RESIST_RUN_ID");
  const std::string run_id =
      given_id && *given_id ? std::string(given_id)
      : nnodes > 1          ? "launch-nodes-" + master_addr + ":" + std::to_string(port)
                            : "launch-" + std::to_string(launcher) + "-" +
                         std::to_string(std::chrono::system_clock::now().time_since_epoch().count());

  std::vector<pid_t> pids(std::size_t(n), -1);
  std::vector<bool> done(std::size_t(n), false);
  std::vector<Stream> streams;
  for (int r = 0; r < n; ++r) {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) {
      std::cerr << "resist-launch: pipe: " << std::strerror(errno) << "\n";
      return 1;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
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
      ::setenv("MASTER_ADDR", master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("RANK", std::to_string(first_rank + r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(n).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(node_rank).c_str(), 1);
      ::setenv("GROUP_WORLD_SIZE", std::to_string(nnodes).c_str(), 1);
      ::setenv("RESIST_RUN_ID", run_id.c_str(), 1);
      ::execvp(argv[i], argv + i);
      std::cerr << "resist-launch: cannot run '" << argv[i] << "': " << std::strerror(errno) << "\n";
      ::_exit(127);
    }
    ::setpgid(pid, pid);
    ::close(out[1]);
    ::close(err[1]);
    pids[std::size_t(r)] = pid;
    streams.push_back({out[0], first_rank + r, false, {}});
    streams.push_back({err[0], first_rank + r, true, {}});
  }

  int failed_rank = -1, exit_code = 0, alive = n;
  bool stopping = false, forwarded = false;
  auto stop_deadline = std::chrono::steady_clock::now();
  auto signal_all = [&](int sig) {
    for (int r = 0; r < n; ++r)
      if (!done[std::size_t(r)]) ::kill(-pids[std::size_t(r)], sig);
  };
  std::vector<pollfd> fds;
  // Once every worker has exited, drain their output for at most a second
  // (a grandchild may still hold a pipe open).
  auto drain_until = std::chrono::steady_clock::time_point::max();
  while (alive > 0 || (std::any_of(streams.begin(), streams.end(), [](const Stream& s) { return s.fd >= 0; }) &&
                       std::chrono::steady_clock::now() < drain_until)) {
    if (alive == 0 && drain_until == std::chrono::steady_clock::time_point::max())
      drain_until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    if (g_signal && !forwarded) {
      std::cerr << "resist-launch: got " << strsignal(g_signal) << ", passing it on to the workers\n";
      signal_all(g_signal);
      forwarded = true;
      if (!stopping) {
        stopping = true;
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(long(grace_s * 1000));
        exit_code = 128 + g_signal;
      }
    }
    fds.clear();
    for (const auto& s : streams)
      if (s.fd >= 0) fds.push_back({s.fd, POLLIN, 0});
    if (!fds.empty()) ::poll(fds.data(), fds.size(), 100);
    else ::usleep(100000);
    for (auto& s : streams) {
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
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      int r = 0;
      while (r < n && pids[std::size_t(r)] != pid) ++r;
      if (r == n) continue;
      done[std::size_t(r)] = true;
      --alive;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failed_rank < 0 && !forwarded) {
        failed_rank = first_rank + r;
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        std::cerr << "resist-launch: rank " << first_rank + r << " (pid " << pid << ") " << describe(status)
                  << "; stopping the other workers\n";
        signal_all(SIGTERM);
        stopping = true;
        stop_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(long(grace_s * 1000));
      }
    }
    if (stopping && alive > 0 && std::chrono::steady_clock::now() > stop_deadline) {
      signal_all(SIGKILL);
      stop_deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
  }
  if (failed_rank >= 0) std::cerr << "resist-launch: failed: rank " << failed_rank << " " << "(exit code " << exit_code << ")\n";
  return exit_code;
}
