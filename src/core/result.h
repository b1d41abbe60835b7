#pragma once

// Errors as values: a small stand-in for C++23's std::expected (g++ 12 lacks it under C++20).
// Method names follow std::expected so that the switch later is mechanical.

#include <cassert>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace medic {

enum class ErrorCode {
  kInvalidArgument,   // the caller's input is wrong (bad JSON, bad config, bad parameter)
  kNotFound,          // the thing asked for does not exist
  kAlreadyExists,     // a unique thing exists already
  kFailedPrecondition,// the thing exists but is in the wrong state (approve a completed incident)
  kPermissionDenied,  // authenticated, not allowed
  kUnauthenticated,   // no or wrong credentials
  kUnavailable,       // a peer or resource is away; retrying may help
  kDeadlineExceeded,  // ran out of time
  kResourceExhausted, // too big, too many
  kInternal,          // our bug or the environment broke an invariant we could not handle
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  std::string ToString() const;
};

Error InvalidArgument(std::string message);
Error NotFound(std::string message);
Error AlreadyExists(std::string message);
Error FailedPrecondition(std::string message);
Error PermissionDenied(std::string message);
Error Unauthenticated(std::string message);
Error Unavailable(std::string message);
Error DeadlineExceeded(std::string message);
Error ResourceExhausted(std::string message);
Error Internal(std::string message);

// Wraps an Error so that Result<T> can be constructed from it unambiguously.
struct Unexpected {
  Error error;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { Check(); return std::get<0>(v_); }
  const T& value() const& { Check(); return std::get<0>(v_); }
  T&& value() && { Check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    assert(!has_value());
    return std::get<1>(v_);
  }

  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void Check() const {
    if (!has_value()) {
      // Reading the value of an error is a broken invariant of the caller.
      std::abort();
    }
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }
  const Error& error() const {
    assert(error_.has_value());
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace medic

#define MEDIC_CONCAT_INNER_(a, b) a##b
#define MEDIC_CONCAT_(a, b) MEDIC_CONCAT_INNER_(a, b)

// Returns the error of a Status or Result expression from the enclosing function.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    auto medic_status_ = (expr);                    \
    if (!medic_status_.has_value()) {               \
      return medic_status_.error();                 \
    }                                               \
  } while (0)

// ASSIGN_OR_RETURN(auto x, Foo()); declares x from a Result or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(MEDIC_CONCAT_(medic_result_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.has_value()) {                      \
    return tmp.error();                        \
  }                                            \
  lhs = std::move(tmp).value()
