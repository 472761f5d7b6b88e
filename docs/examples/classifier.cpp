// docs/classifier.md: a classifier for an HTTP client and a database driver.
#include <cstdio>
#include <stdexcept>
#include <string>

#include <stockade/stockade.hpp>

namespace {

struct http_response {
  int status;
  int retry_after_seconds;  // from the Retry-After header, 0 if absent
};

struct db_error : std::runtime_error {
  std::string sqlstate;
  explicit db_error(std::string state)
      : std::runtime_error("db error"), sqlstate(std::move(state)) {}
};

using stockade::verdict;

const stockade::classifier classify{
    // Returned values: 429 and 5xx may pass; other 4xx are the caller's fault.
    stockade::on_result([](const http_response& r) -> stockade::outcome {
      if (r.status == 429 || r.status == 503) {
        return {verdict::transient, std::chrono::seconds(r.retry_after_seconds)};
      }
      if (r.status >= 500) return verdict::transient;
      if (r.status >= 400) return verdict::permanent;
      return verdict::success;
    }),
    // Exceptions, first match wins: inspect the SQLSTATE class.
    stockade::when<db_error>([](const db_error& e) {
      if (e.sqlstate.starts_with("08") || e.sqlstate == "57P01") return verdict::fatal;
      if (e.sqlstate.starts_with("23")) return verdict::permanent;
      return verdict::transient;
    }),
    stockade::on<std::bad_alloc, verdict::permanent>{},
};

}  // namespace

int main() {
  const auto throttled = classify.classify_result(http_response{429, 2});
  const auto reconnect = classify.classify_exception(std::make_exception_ptr(db_error("08006")));
  const auto duplicate = classify.classify_exception(std::make_exception_ptr(db_error("23505")));
  std::printf("429: %s after %llds; 08006: %s; 23505: %s\n", stockade::to_string(throttled.kind),
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::seconds>(throttled.retry_after).count()),
              stockade::to_string(reconnect.kind), stockade::to_string(duplicate.kind));

  // The same classifier, chosen for a pipeline: every attempt is classified by it, once.
  // try_call returns what the call came to with its outcome, and throws nothing.
  const auto policy = stockade::pipeline{stockade::pass_through{}}.classify_with(classify);
  const auto unavailable = policy.try_call([] { return http_response{503, 0}; });
  const bool ok = throttled.kind == verdict::transient && reconnect.kind == verdict::fatal &&
                  duplicate.kind == verdict::permanent &&
                  unavailable.outcome().kind == verdict::transient;
  return ok ? 0 : 1;
}
