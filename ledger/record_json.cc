#include "ledger/record_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace medsettle::ledger {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Whether every field reachable from `d` is of a kind AppendMessage writes.
bool SupportedUncached(const Descriptor* d, std::set<const Descriptor*>* visiting) {
  if (!visiting->insert(d).second) return true;  // a cycle: decided by the first visit
  if (d->file()->package() == "google.protobuf" || d->options().map_entry()) return false;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return false;  // NaN, infinities and shortest round-trip printing: leave to protobuf
      case FieldDescriptor::CPPTYPE_STRING:
        if (f->type() == FieldDescriptor::TYPE_BYTES) return false;  // base64
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (f->is_map() || !SupportedUncached(f->message_type(), visiting)) return false;
        break;
      default:
        break;
    }
  }
  return true;
}

bool Supported(const Descriptor* d) {
  static std::mutex mu;
  static std::unordered_map<const Descriptor*, bool>* cache =
      new std::unordered_map<const Descriptor*, bool>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache->find(d);
  if (it != cache->end()) return it->second;
  std::set<const Descriptor*> visiting;
  const bool supported = SupportedUncached(d, &visiting);
  (*cache)[d] = supported;
  return supported;
}

template <typename T>
void AppendNumber(std::string* out, T value, bool quoted) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  (void)ec;
  if (quoted) out->push_back('"');
  out->append(buffer, static_cast<size_t>(end - buffer));
  if (quoted) out->push_back('"');
}

// A JSON string: quotes, backslashes and control characters escaped; the
// rest (valid UTF-8, as protobuf strings are) as it is.
void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
    out->append(s.substr(start, i - start));
    start = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
        break;
    }
  }
  out->append(s.substr(start));
  out->push_back('"');
}

void AppendMessage(const Message& m, std::string* out);

// One value of field `f` (element `index` of a repeated field, else -1).
void AppendValue(const Message& m, const Reflection* r, const FieldDescriptor* f, int index,
                 std::string* out) {
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      AppendNumber(out, rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), false);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      AppendNumber(out, rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), false);
      break;
    case FieldDescriptor::CPPTYPE_INT64:  // proto3 JSON: 64-bit integers as strings
      AppendNumber(out, rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), true);
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      AppendNumber(out, rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), true);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      const google::protobuf::EnumValueDescriptor* value = f->enum_type()->FindValueByNumber(number);
      if (value != nullptr) {
        AppendJsonString(out, value->name());
      } else {
        AppendNumber(out, number, false);  // an unknown value: its number
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      AppendJsonString(out, s);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
      break;
    default:  // floating point: excluded by Supported
      out->append("null");
      break;
  }
}

void AppendMessage(const Message& m, std::string* out) {
  const Reflection* r = m.GetReflection();
  // Exactly the fields proto3 JSON prints: set ones (non-default scalars,
  // non-empty repeated fields, present messages, optional and oneof
  // members that are set), in field number order.
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);
  out->push_back('{');
  bool first = true;
  for (const FieldDescriptor* f : fields) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(out, f->name());
    out->push_back(':');
    if (f->is_repeated()) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out->push_back(',');
        AppendValue(m, r, f, i, out);
      }
      out->push_back(']');
    } else {
      AppendValue(m, r, f, -1, out);
    }
  }
  out->push_back('}');
}

}  // namespace

absl::Status ReferenceRecordJson(const google::protobuf::Message& message, std::string* out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::InternalError(std::string(status.message()));
  out->append(json);
  return absl::OkStatus();
}

absl::Status AppendRecordJson(const google::protobuf::Message& message, std::string* out) {
  if (!Supported(message.GetDescriptor())) return ReferenceRecordJson(message, out);
  AppendMessage(message, out);
  return absl::OkStatus();
}

}  // namespace medsettle::ledger
