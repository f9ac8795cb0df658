#include "support/web_console.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace media_sync::testing {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

HttpAnswer ParseAnswer(const std::string& raw) {
  HttpAnswer answer;
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) return answer;
  answer.status = std::atoi(raw.substr(9, 3).c_str());
  size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    size_t end = raw.find("\r\n", at);
    std::string line = raw.substr(at, end - at);
    at = end + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = Lower(line.substr(0, colon));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (name == "set-cookie") answer.set_cookies.push_back(value);
    answer.headers[name] = value;
  }
  answer.body = raw.substr(head_end + 4);
  return answer;
}

}  // namespace

Json HttpAnswer::json() const { return Json::parse(body, nullptr, /*allow_exceptions=*/false); }

std::string HttpAnswer::Header(const std::string& name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? "" : it->second;
}

HttpAnswer HttpCall(int port, const std::string& method, const std::string& target,
                    const std::map<std::string, std::string>& headers, const std::string& body,
                    std::chrono::milliseconds timeout) {
  RawConnection connection(port);
  if (!connection.connected()) return {};
  std::string request = method + " " + target +
                        " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  if (!connection.Send(request, timeout)) return {};
  HttpReply reply = connection.ReadResponse(timeout);
  if (reply.status == 0) return {};
  return ParseAnswer(reply.headers + reply.body);
}

WebConsoleProcess::WebConsoleProcess(const LocalStack& stack,
                                     std::map<std::string, std::string> env) {
  env.emplace("WEB_ADDRESS", "127.0.0.1:0");
  env.emplace("LOG_LEVEL", "info");
  process_ = std::make_unique<WorkerProcess>(stack, env, std::vector<std::string>{"web"});
  const std::regex announced(R"(web console on \S+ \(port (\d+)\))");
  bool started = WaitUntil(
      [&] {
        std::smatch match;
        std::string log = process_->Log();
        if (!std::regex_search(log, match, announced)) return false;
        port_ = std::stoi(match[1]);
        return true;
      },
      std::chrono::seconds(20));
  if (!started) ADD_FAILURE() << "media-sync web did not start:\n" << process_->Log();
}

HttpAnswer WebConsoleProcess::Get(const std::string& target,
                                  const std::map<std::string, std::string>& headers) {
  return HttpCall(port_, "GET", target, headers);
}

HttpAnswer WebConsoleProcess::Post(const std::string& target, const std::string& body,
                                   const std::map<std::string, std::string>& headers) {
  std::map<std::string, std::string> all = {{"Content-Type", "application/json"}};
  for (const auto& [name, value] : headers) all[name] = value;
  return HttpCall(port_, "POST", target, all, body);
}

}  // namespace media_sync::testing
