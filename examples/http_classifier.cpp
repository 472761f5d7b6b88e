// A custom classifier for HTTP status codes: the callee returns a response (it does not throw),
// and a result rule says which statuses are worth retrying, which are the caller's fault, and
// passes the server's Retry-After on to the retry as a hint. Runs on the manual clock: instant.
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <stockade/classifier.hpp>
#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>

using namespace std::chrono_literals;

struct http_response {
  int status = 200;
  std::optional<std::chrono::seconds> retry_after;  // the Retry-After header, if any
  std::string body;
};

/// 2xx: success. 408, 429, 500, 502, 503, 504: the server may answer next time (transient),
/// waiting as long as its Retry-After asks. Every other 4xx: our request is wrong (permanent):
/// never retried, and never counted against the server by a circuit breaker.
stockade::outcome classify_http(const http_response& r) {
  if (r.status >= 200 && r.status < 300) return stockade::verdict::success;
  const auto hint = std::chrono::duration_cast<stockade::duration>(r.retry_after.value_or(0s));
  switch (r.status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return {stockade::verdict::transient, hint};
    default:
      return r.status >= 400 && r.status < 500 ? stockade::verdict::permanent
                                               : stockade::verdict::transient;
  }
}

int main(int /*argc*/, char** /*argv*/) {  // --quick accepted and ignored
  stockade::testing::manual_clock clock;   // production code leaves the clock out
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 4,
                                          .backoff = stockade::exponential{100ms, 2.0, 2s},
                                          .jitter = stockade::jitter::none()}}}
          .classify_with(stockade::classifier{stockade::on_result(classify_http)});

  // A server that is busy, then rate-limits us, then answers.
  std::vector<http_response> replies = {
      {503, 3s, "busy"}, {429, std::nullopt, "slow down"}, {200, std::nullopt, "{\"id\": 7}"}};
  std::size_t sent = 0;
  stockade::context first{clock};
  const http_response got = policy(first, [&] { return replies[sent++]; });
  std::printf(
      "GET /orders/7: %d %s after %zu requests, %lld ms waited\n", got.status, got.body.c_str(),
      sent,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(clock.total_slept()).count()));

  // A 404 is our mistake: returned at once, never retried.
  std::size_t sent_404 = 0;
  stockade::context second{clock};
  const auto answer = policy.try_call(second, [&] {
    ++sent_404;
    return http_response{404, std::nullopt, "no such order"};
  });
  const http_response& missing = answer.value();
  std::printf("GET /orders/8: %d after %zu request(s), verdict %s\n", missing.status, sent_404,
              stockade::to_string(answer.outcome().kind));

  // The 503 asked for 3 s: that hint replaced the first backoff; the 429 had none: 200 ms.
  const bool as_expected = got.status == 200 && sent == 3 && clock.total_slept() == 3200ms &&
                           missing.status == 404 && sent_404 == 1;
  return as_expected ? 0 : 1;
}
