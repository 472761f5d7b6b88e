// The SQLSTATE classifier of examples/postgres/sqlstate.hpp: each class of code gets the verdict
// the issue asks for, a lost session is fatal, and a pipeline classified with it retries what is
// transient, resets on what is fatal and never retries what is permanent.
#include "sqlstate.hpp"

#include <gtest/gtest.h>

#include <stockade/manual_clock.hpp>
#include <stockade/pipeline.hpp>
#include <stockade/retry.hpp>

#include <string>

using stockade::verdict;

TEST(SqlstateClassifier, TooManyConnectionsIsTransient) {
  EXPECT_EQ(pg::verdict_for("53300"), verdict::transient);
  EXPECT_EQ(pg::verdict_for("53200"), verdict::transient);  // out of memory: the same class
}

TEST(SqlstateClassifier, TerminatedBackendIsFatal) {
  EXPECT_EQ(pg::verdict_for("57P01"), verdict::fatal);
  EXPECT_EQ(pg::verdict_for("57P02"), verdict::fatal);
}

TEST(SqlstateClassifier, ServerStartingUpIsTransient) {
  EXPECT_EQ(pg::verdict_for("57P03"), verdict::transient);
}

TEST(SqlstateClassifier, BrokenConnectionIsFatalButFailedConnectIsTransient) {
  EXPECT_EQ(pg::verdict_for("08006"), verdict::fatal);
  EXPECT_EQ(pg::verdict_for("08003"), verdict::fatal);
  EXPECT_EQ(pg::verdict_for("08000"), verdict::fatal);
  EXPECT_EQ(pg::verdict_for("08001"), verdict::transient);  // nothing to reset: no connection
  EXPECT_EQ(pg::verdict_for("08004"), verdict::transient);
}

TEST(SqlstateClassifier, SerializationFailureAndDeadlockAreTransient) {
  EXPECT_EQ(pg::verdict_for("40001"), verdict::transient);
  EXPECT_EQ(pg::verdict_for("40P01"), verdict::transient);
}

TEST(SqlstateClassifier, ConstraintViolationsArePermanent) {
  for (const char* code : {"23505", "23503", "23502", "23514", "23P01", "23000"}) {
    EXPECT_EQ(pg::verdict_for(code), verdict::permanent) << code;
  }
}

TEST(SqlstateClassifier, StatementErrorsArePermanent) {
  for (const char* code :
       {"42601", "42P01", "22P02", "28P01", "3D000", "0A000", "25P02", "57P04"}) {
    EXPECT_EQ(pg::verdict_for(code), verdict::permanent) << code;
  }
}

TEST(SqlstateClassifier, UnknownAndMissingCodesAreTransient) {
  EXPECT_EQ(pg::verdict_for(""), verdict::transient);
  EXPECT_EQ(pg::verdict_for("XX000"), verdict::transient);
  EXPECT_EQ(pg::verdict_for("garbage"), verdict::transient);
}

TEST(SqlstateClassifier, LostSessionIsFatalWhateverTheCode) {
  EXPECT_EQ(pg::verdict_of(pg::error("57014", "timed out", true)), verdict::fatal);
  EXPECT_EQ(pg::verdict_of(pg::error("57014", "timed out", false)), verdict::transient);
  EXPECT_EQ(pg::verdict_of(pg::error("", "server closed the connection", true)), verdict::fatal);
  EXPECT_EQ(pg::verdict_of(pg::error("23505", "duplicate key", true)), verdict::permanent);
}

TEST(SqlstateClassifier, VerdictIsAConstantExpression) {
  static_assert(pg::verdict_for("53300") == verdict::transient);
  static_assert(pg::verdict_for("23505") == verdict::permanent);
}

TEST(SqlstateClassifier, PipelineRetriesTransientAndStopsAtPermanent) {
  stockade::testing::manual_clock clock;
  const auto policy =
      stockade::pipeline{stockade::retry{{.max_attempts = 4}}}.classify_with(pg::classifier());
  int calls = 0;
  stockade::context first{clock};
  EXPECT_EQ(policy(first,
                   [&] {
                     if (++calls < 3) throw pg::error("53300", "too many clients");
                     return 7;
                   }),
            7);
  EXPECT_EQ(calls, 3);

  calls = 0;
  stockade::context second{clock};
  const auto duplicate = policy.try_call(second, [&]() -> int {
    ++calls;
    throw pg::error("23505", "duplicate key value");
  });
  EXPECT_THROW(duplicate.error().raise(), pg::error);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(duplicate.outcome().kind, verdict::permanent);
}

TEST(SqlstateClassifier, PipelineRunsResetActionOnFatal) {
  stockade::testing::manual_clock clock;
  int resets = 0;
  const auto policy = stockade::pipeline{
      stockade::retry{{.max_attempts = 2}, stockade::on_fatal([&] {
                        ++resets;
                      })}}.classify_with(pg::classifier());
  int calls = 0;
  stockade::context ctx{clock};
  policy(ctx, [&] {
    if (++calls == 1) throw pg::error("57P01", "terminating connection");
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(resets, 1);
}
