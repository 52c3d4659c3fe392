// A settlement record as proto3 JSON for the ledger's record_json column
// (jsonb, auditors' SQL), with the .proto field names. The same JSON value
// as google::protobuf::util::MessageToJsonString with
// preserve_proto_field_names — same fields, same values, int64 as strings,
// enums by name, defaults omitted — written by walking the message with
// reflection instead of through the binary form and a type resolver: about
// five times faster on a pharmacy record, which is most of Ship's client
// work. Formatting may differ (which characters are \u-escaped); as jsonb
// the values are equal (tests/ledger_store_test.cc checks it on the server).
// Messages with fields this writer does not handle (maps, bytes, floating
// point, google.protobuf.* well-known types) go through MessageToJsonString.
#ifndef MEDSETTLE_LEDGER_RECORD_JSON_H_
#define MEDSETTLE_LEDGER_RECORD_JSON_H_

#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"

namespace medsettle::ledger {

// Appends `message` as JSON to `*out`. INTERNAL only when the fallback
// (MessageToJsonString) fails. Thread-safe.
absl::Status AppendRecordJson(const google::protobuf::Message& message, std::string* out);

// MessageToJsonString with the same options (the reference; tests).
absl::Status ReferenceRecordJson(const google::protobuf::Message& message, std::string* out);

}  // namespace medsettle::ledger

#endif  // MEDSETTLE_LEDGER_RECORD_JSON_H_
