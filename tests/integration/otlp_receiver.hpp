#pragma once

// A minimal OTLP/HTTP collector for tests: accepts `POST /v1/metrics` on
// 127.0.0.1:<free port> in a background thread, records each body with its
// headers and whether it passes `validate_otlp_metrics_json`, answers 200.

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "observability/otlp.hpp"

namespace crew::it {

class otlp_receiver {
public:
  struct request {
    std::string body;
    std::map<std::string, std::string> headers; ///< lowercase names
    bool valid = false;
    std::vector<std::string> problems;
  };

  otlp_receiver() {
    server_.Post("/v1/metrics", [this](const httplib::Request& req,
                                       httplib::Response& res) {
      request r;
      r.body = req.body;
      for (auto& [k, v] : req.headers) {
        std::string key;
        for (char c : k)
          key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[key] = v;
      }
      auto check = validate_otlp_metrics_json(req.body);
      r.valid = check.ok;
      r.problems = check.problems;
      {
        std::lock_guard guard{mtx_};
        requests_.push_back(std::move(r));
      }
      res.status = 200;
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0)
      throw std::runtime_error("otlp_receiver: cannot bind 127.0.0.1");
    thread_ = std::thread{[this] { server_.listen_after_bind(); }};
  }

  ~otlp_receiver() {
    server_.stop();
    if (thread_.joinable())
      thread_.join();
  }

  otlp_receiver(const otlp_receiver&) = delete;
  otlp_receiver& operator=(const otlp_receiver&) = delete;

  int port() const { return port_; }

  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/metrics";
  }

  std::vector<request> requests() const {
    std::lock_guard guard{mtx_};
    return requests_;
  }

private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mtx_;
  std::vector<request> requests_;
};

} // namespace crew::it
