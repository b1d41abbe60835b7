#include "core/result.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace medic {
namespace {

TEST(ResultTest, NamedConstructorsCarryCodeNameAndMessage) {
  struct Case {
    Error error;
    ErrorCode code;
    std::string_view name;
  };
  const Case kCases[] = {
      {InvalidArgument("m"), ErrorCode::kInvalidArgument, "invalid_argument"},
      {NotFound("m"), ErrorCode::kNotFound, "not_found"},
      {AlreadyExists("m"), ErrorCode::kAlreadyExists, "already_exists"},
      {FailedPrecondition("m"), ErrorCode::kFailedPrecondition, "failed_precondition"},
      {PermissionDenied("m"), ErrorCode::kPermissionDenied, "permission_denied"},
      {Unauthenticated("m"), ErrorCode::kUnauthenticated, "unauthenticated"},
      {Unavailable("m"), ErrorCode::kUnavailable, "unavailable"},
      {DeadlineExceeded("m"), ErrorCode::kDeadlineExceeded, "deadline_exceeded"},
      {ResourceExhausted("m"), ErrorCode::kResourceExhausted, "resource_exhausted"},
      {Internal("m"), ErrorCode::kInternal, "internal"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.name));
    EXPECT_EQ(c.error.code, c.code);
    EXPECT_EQ(c.error.message, "m");
    EXPECT_EQ(ErrorCodeName(c.code), c.name);
    EXPECT_EQ(c.error.ToString(), std::string(c.name) + ": m");
  }
}

TEST(ResultTest, ValueAndErrorStates) {
  Result<int> ok = 42;
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(static_cast<bool>(ok));
  EXPECT_EQ(*ok, 42);
  EXPECT_EQ(ok.value_or(7), 42);

  Result<int> bad = NotFound("incident 42");
  ASSERT_FALSE(bad.has_value());
  EXPECT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(bad.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(bad.error().message, "incident 42");
  EXPECT_EQ(bad.value_or(7), 7);
}

TEST(ResultTest, HoldsMoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.has_value());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 5);
}

TEST(ResultTest, ArrowReachesMembers) {
  Result<std::string> r = std::string("abc");
  EXPECT_EQ(r->size(), 3u);
}

TEST(ResultTest, StatusDefaultsToOk) {
  Status s;
  EXPECT_TRUE(s.has_value());
  EXPECT_TRUE(OkStatus().has_value());
  Status e = Internal("boom");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "boom");
}

Status FailIf(bool fail) {
  if (fail) {
    return Unavailable("peer away");
  }
  return OkStatus();
}

Result<int> Half(int n) {
  if (n % 2 != 0) {
    return InvalidArgument("odd");
  }
  return n / 2;
}

// Exercises both macros: the first error wins and nothing after it runs.
Result<int> Chain(bool fail_first, int n, int* reached) {
  RETURN_IF_ERROR(FailIf(fail_first));
  *reached = 1;
  ASSIGN_OR_RETURN(int half, Half(n));
  *reached = 2;
  ASSIGN_OR_RETURN(int quarter, Half(half));
  *reached = 3;
  return quarter;
}

TEST(ResultTest, MacrosPropagateTheFirstError) {
  struct Case {
    bool fail_first;
    int n;
    std::optional<ErrorCode> want_error;
    int want_value;
    int want_reached;
  };
  const Case kCases[] = {
      {true, 8, ErrorCode::kUnavailable, 0, 0},
      {false, 7, ErrorCode::kInvalidArgument, 0, 1},
      {false, 6, ErrorCode::kInvalidArgument, 0, 2},
      {false, 8, std::nullopt, 2, 3},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE("n=" + std::to_string(c.n) + " fail_first=" + std::to_string(c.fail_first));
    int reached = 0;
    Result<int> r = Chain(c.fail_first, c.n, &reached);
    EXPECT_EQ(reached, c.want_reached);
    if (c.want_error) {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code, *c.want_error);
    } else {
      ASSERT_TRUE(r.has_value()) << r.error().ToString();
      EXPECT_EQ(*r, c.want_value);
    }
  }
}

TEST(ResultDeathTest, ReadingTheValueOfAnErrorAborts) {
  Result<int> bad = Internal("x");
  EXPECT_DEATH({ (void)bad.value(); }, "");
}

}  // namespace
}  // namespace medic
