#include "support/raw_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <fstream>

namespace media_sync::testing {

using Clock = std::chrono::steady_clock;

RawConnection::RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A blocking connect: on loopback it completes once the kernel queued it,
  // whether the server accepted yet or not.
  connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  if (connected_) connected_ = ::fcntl(fd_.get(), F_SETFL, O_NONBLOCK) == 0;
}

bool RawConnection::Send(std::string_view bytes, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<size_t>(sent));
      continue;
    }
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd writable{fd_.get(), POLLOUT, 0};
    if (::poll(&writable, 1, static_cast<int>(left)) < 0 && errno != EINTR) return false;
  }
  return true;
}

HttpReply RawConnection::ReadResponse(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  size_t end_of_head = std::string::npos;
  while ((end_of_head = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill(deadline)) return {};
  }
  HttpReply reply;
  reply.headers = buffer_.substr(0, end_of_head + 4);
  if (reply.headers.size() > 12) {
    std::from_chars(reply.headers.data() + 9, reply.headers.data() + 12, reply.status);
  }
  size_t length = 0;
  if (auto at = reply.headers.find("Content-Length: "); at != std::string::npos) {
    std::from_chars(reply.headers.data() + at + 16, reply.headers.data() + reply.headers.size(),
                    length);
  }
  while (buffer_.size() < end_of_head + 4 + length) {
    if (!Fill(deadline)) return {};
  }
  reply.body = buffer_.substr(end_of_head + 4, length);
  buffer_.erase(0, end_of_head + 4 + length);
  return reply;
}

bool RawConnection::Closed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Fill(deadline)) buffer_.clear();
  return closed_;
}

bool RawConnection::Fill(Clock::time_point deadline) {
  if (closed_) return false;
  std::array<char, 64 * 1024> chunk{};
  for (;;) {
    ssize_t got = ::recv(fd_.get(), chunk.data(), chunk.size(), 0);
    if (got > 0) {
      buffer_.append(chunk.data(), static_cast<size_t>(got));
      return true;
    }
    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      closed_ = true;
      return false;
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd readable{fd_.get(), POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(left)) < 0 && errno != EINTR) return false;
  }
}

ProbeResult Probe(int port, const std::string& path, std::chrono::milliseconds timeout) {
  auto started = Clock::now();
  ProbeResult result;
  RawConnection connection(port);
  if (connection.connected() &&
      connection.Send("GET " + path + " HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
                      timeout)) {
    result.reply = connection.ReadResponse(
        std::chrono::ceil<std::chrono::milliseconds>(started + timeout - Clock::now()));
  }
  result.took = std::chrono::ceil<std::chrono::milliseconds>(Clock::now() - started);
  return result;
}

int64_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // in kB
  }
  return -1;
}

}  // namespace media_sync::testing
