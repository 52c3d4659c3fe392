#include "engine/status.h"

#include <optional>

#include "absl/strings/string_view.h"

#include "absl/strings/cord.h"

namespace medsettle::engine {
namespace {
constexpr absl::string_view kReasonUrl = "type.medsettle.dev/reason";
constexpr absl::string_view kFieldUrl = "type.medsettle.dev/field";
}  // namespace

absl::Status Refusal(absl::StatusCode code, std::string_view reason,
                     std::string_view field, std::string_view message) {
  absl::Status status(code, absl::string_view(message.data(), message.size()));
  status.SetPayload(kReasonUrl, absl::Cord(absl::string_view(reason.data(), reason.size())));
  if (!field.empty()) {
    status.SetPayload(kFieldUrl, absl::Cord(absl::string_view(field.data(), field.size())));
  }
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  if (status.ok()) return "";
  auto reason = status.GetPayload(kReasonUrl);
  return reason ? std::string(*reason) : "UNKNOWN";
}

std::string FieldOf(const absl::Status& status) {
  auto field = status.GetPayload(kFieldUrl);
  return field ? std::string(*field) : "";
}

}  // namespace medsettle::engine
