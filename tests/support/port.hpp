#pragma once
// A TCP port on the loopback that nothing listens on right now (for tests
// that start a rendezvous themselves).
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace resist::test {

inline int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(s);
  return port;
}

}  // namespace resist::test
