#include "tests/support/settling_clients.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <utility>

#include "engine/text.h"

namespace medsettle::testing {

using engine::Cat;
using Stub = v1::SettlementService::Stub;

void UseReplicaAcksForFailover(gateway::GatewayConfig& c) {
  c.redis_replica_acks = 1;
  c.redis_replica_ack_timeout_ms = 500;
  c.redis_command_timeout_ms = 1500;
  c.request_timeout_ms = 3000;
}

bool OutcomeUnknown(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

namespace {

void AddTotalsAt(const google::protobuf::Message& message, const std::string& prefix, int64_t sign,
                 Totals* totals) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const google::protobuf::Reflection* reflection = message.GetReflection();
  using Field = google::protobuf::FieldDescriptor;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const Field* field = descriptor->field(i);
    if (field->name() == "version" || field->name() == "year") continue;
    const std::string name = prefix + field->name();
    if (field->is_repeated()) {
      if (field->cpp_type() != Field::CPPTYPE_MESSAGE) continue;
      // An element is named by its first field (the ledger, the
      // responsibility), so the same one adds up across messages.
      for (int k = 0; k < reflection->FieldSize(message, field); ++k) {
        const google::protobuf::Message& element =
            reflection->GetRepeatedMessage(message, field, k);
        const Field* key = element.GetDescriptor()->field(0);
        const std::string id =
            key->cpp_type() == Field::CPPTYPE_ENUM
                ? std::string(element.GetReflection()->GetEnum(element, key)->name())
                : Cat(element.GetReflection()->GetInt32(element, key));
        AddTotalsAt(element, Cat(name, "[", id, "]."), sign, totals);
      }
      continue;
    }
    int64_t value = 0;
    switch (field->cpp_type()) {
      case Field::CPPTYPE_MESSAGE:
        if (reflection->HasField(message, field)) {
          AddTotalsAt(reflection->GetMessage(message, field), name + ".", sign, totals);
        }
        continue;
      case Field::CPPTYPE_INT64:
        value = reflection->GetInt64(message, field);
        break;
      case Field::CPPTYPE_INT32:
        // The key of a repeated element is its name, not an amount.
        if (i == 0 && prefix.ends_with("].")) continue;
        value = reflection->GetInt32(message, field);
        break;
      default:
        continue;  // identity (person_key), enums
    }
    if (value == 0) continue;
    const int64_t sum = ((*totals)[name] += sign * value);
    if (sum == 0) totals->erase(name);
  }
}

std::string Show(const Totals& totals) {
  std::string text;
  for (const auto& [name, value] : totals) text += Cat(name, "=", value, " ");
  return text;
}

}  // namespace

void AddTotals(const google::protobuf::Message& message, int64_t sign, Totals* totals) {
  AddTotalsAt(message, "", sign, totals);
}

void AcknowledgedModel::set_context(std::string context) {
  std::lock_guard<std::mutex> lock(mutex_);
  context_ = std::move(context);
}

void AcknowledgedModel::Settled(int person, const v1::SettleResponse& response) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto [known, first] = requests_.emplace(response.request_id(), response.settlement_id());
  if (!first) {
    EXPECT_EQ(known->second, response.settlement_id())
        << context_ << ": request " << response.request_id()
        << " was answered with two settlements (paid twice)";
    EXPECT_TRUE(response.replayed()) << context_ << ": " << response.request_id();
    return;
  }
  Person& p = persons_[person];
  p.year_to_date = response.year_to_date().SerializeAsString();
  AddTotals(response.accumulator_delta(), +1, &p.totals);
  ++p.changes;
  p.unreversed.push_back(response.settlement_id());
  AddTotals(response.accumulator_delta(), +1, &deltas_[response.settlement_id()]);
  AddTotals(response.amounts(), +1, &amounts_[response.settlement_id()]);
}

void AcknowledgedModel::Reversed(int person, const v1::ReverseResponse& response) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto [known, first] = reversal_ids_.emplace(response.settlement_id(), response.reversal_id());
  if (!first) {
    EXPECT_EQ(known->second, response.reversal_id())
        << context_ << ": settlement " << response.settlement_id() << " was reversed twice";
    return;
  }
  Person& p = persons_[person];
  auto unreversed = std::find(p.unreversed.begin(), p.unreversed.end(), response.settlement_id());
  if (unreversed == p.unreversed.end()) {
    ADD_FAILURE() << context_ << ": reversed " << response.settlement_id()
                  << ", which is not an acknowledged settlement of person " << person;
    return;
  }
  p.unreversed.erase(unreversed);
  p.year_to_date = response.year_to_date().SerializeAsString();
  for (const auto& [name, value] : deltas_[response.settlement_id()]) {
    if ((p.totals[name] -= value) == 0) p.totals.erase(name);
  }
  ++p.changes;
}

size_t AcknowledgedModel::settlements() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return deltas_.size();
}

size_t AcknowledgedModel::reversals() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reversal_ids_.size();
}

std::vector<std::string> AcknowledgedModel::Unreversed(int person) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto p = persons_.find(person);
  return p == persons_.end() ? std::vector<std::string>() : p->second.unreversed;
}

std::map<std::string, std::string> AcknowledgedModel::Requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

void AcknowledgedModel::ExpectGatewayHolds(GatewayHarness& h, const std::string& institution,
                                           const std::string& date,
                                           const std::function<std::string(int person)>& id_number,
                                           const std::string& context) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [person, expected] : persons_) {
    v1::CheckCoverageResponse now;
    CallResult c =
        h.Call(&Stub::CheckCoverage, institution, CoverageRequest(id_number(person)), &now);
    ASSERT_TRUE(c.ok()) << context << ": person " << person << ": " << Describe(c);
    EXPECT_EQ(now.year_to_date().SerializeAsString(), expected.year_to_date)
        << context << ": person " << person << " holds " << now.year_to_date().ShortDebugString()
        << "; the last acknowledged answer said otherwise";
    Totals held;
    AddTotals(now.year_to_date(), +1, &held);
    EXPECT_EQ(held, expected.totals)
        << context << ": person " << person << " holds " << Show(held)
        << "\nthe acknowledged deltas add up to " << Show(expected.totals);
    EXPECT_EQ(now.year_to_date().version(), expected.changes)
        << context << ": person " << person
        << ": the year's version counts every recorded change, and " << expected.changes
        << " were acknowledged";
  }
  // Every settlement's record is there, once, under its request id.
  for (const auto& [request_id, settlement_id] : requests_) {
    v1::GetSettlementRequest get;
    get.set_settlement_id(settlement_id);
    v1::SettleResponse stored;
    CallResult c = h.Call(&Stub::GetSettlement, institution, get, &stored);
    ASSERT_TRUE(c.ok()) << context << ": settlement " << settlement_id << " of " << request_id
                        << ": " << Describe(c);
    EXPECT_EQ(stored.request_id(), request_id) << context << ": " << settlement_id;
    EXPECT_EQ(stored.status(), reversal_ids_.contains(settlement_id)
                                   ? v1::SETTLEMENT_STATUS_REVERSED
                                   : v1::SETTLEMENT_STATUS_SETTLED)
        << context << ": " << settlement_id;
  }
  Totals settled_amounts, reversed_amounts;
  for (const auto& [id, amounts] : amounts_) {
    for (const auto& [name, value] : amounts) settled_amounts[name] += value;
    if (reversal_ids_.contains(id)) {
      for (const auto& [name, value] : amounts) reversed_amounts[name] += value;
    }
  }
  v1::ReconcileRequest day;
  day.set_date(date);
  v1::ReconcileResponse reconciled;
  CallResult c = h.Call(&Stub::Reconcile, institution, day, &reconciled);
  ASSERT_TRUE(c.ok()) << context << ": " << Describe(c);
  EXPECT_EQ(reconciled.settled().count(), static_cast<int64_t>(amounts_.size())) << context;
  EXPECT_EQ(reconciled.reversed().count(), static_cast<int64_t>(reversal_ids_.size())) << context;
  Totals reconciled_settled, reconciled_reversed;
  AddTotals(reconciled.settled().amounts(), +1, &reconciled_settled);
  AddTotals(reconciled.reversed().amounts(), +1, &reconciled_reversed);
  EXPECT_EQ(reconciled_settled, settled_amounts) << context;
  EXPECT_EQ(reconciled_reversed, reversed_amounts) << context;
}

SettlingClients::SettlingClients(GatewayHarness& h, Options options, AcknowledgedModel& model)
    : options_(std::move(options)), model_(model) {
  for (int client = 0; client < options_.clients; ++client) {
    threads_.emplace_back([this, &h, client] { Run(h, client); });
  }
}

SettlingClients::~SettlingClients() { Stop(); }

void SettlingClients::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void SettlingClients::Run(GatewayHarness& h, int client) {
  std::unique_ptr<Stub> stub = v1::SettlementService::NewStub(h.NewChannel());
  for (int round = 0; !stop_.load(); ++round) {
    for (size_t i = static_cast<size_t>(client); i < options_.persons.size() && !stop_.load();
         i += static_cast<size_t>(options_.clients)) {
      const int person = options_.persons[i];
      const v1::SettleRequest request = options_.request(person, round);
      v1::SettleResponse response;
      Answered answered = CallUntilAnswered(*stub, &Stub::Settle, options_.institution, request,
                                            &response, options_.resend);
      resent_ += answered.resent;
      if (answered.last.ok()) {
        model_.Settled(person, response);
        if (options_.on_acknowledged) options_.on_acknowledged(person);
      } else if (answered.gave_up()) {
        ++unanswered_;
        ADD_FAILURE() << "person " << person << ", " << request.request_id() << ": no answer after "
                      << options_.resend.give_up_ms << " ms; last: " << Describe(answered.last);
      } else {
        ++refused_;
        ADD_FAILURE() << "person " << person << ", " << request.request_id() << ": "
                      << Describe(answered.last);
      }
      if (options_.pause_between_calls_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.pause_between_calls_ms));
      }
    }
  }
}

}  // namespace medsettle::testing
