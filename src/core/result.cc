#include "core/result.h"

namespace medic {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kFailedPrecondition: return "failed_precondition";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kDeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::kResourceExhausted: return "resource_exhausted";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

std::string Error::ToString() const {
  return std::string(ErrorCodeName(code)) + ": " + message;
}

Error InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
Error NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
Error AlreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
Error FailedPrecondition(std::string m) { return {ErrorCode::kFailedPrecondition, std::move(m)}; }
Error PermissionDenied(std::string m) { return {ErrorCode::kPermissionDenied, std::move(m)}; }
Error Unauthenticated(std::string m) { return {ErrorCode::kUnauthenticated, std::move(m)}; }
Error Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
Error DeadlineExceeded(std::string m) { return {ErrorCode::kDeadlineExceeded, std::move(m)}; }
Error ResourceExhausted(std::string m) { return {ErrorCode::kResourceExhausted, std::move(m)}; }
Error Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

}  // namespace medic
