// medsettle-journal end to end, in-process (tools/journal/journal_tool.h)
// against a real redis-server, over journal entries written by real
// commits and reversals (cache::RedisSettlementStore) of records built as the
// gateway builds them (the shipped engine settles, contract::
// SettlementToProto and BuildLedgerRecord make the one LedgerRecord; the
// reversal is the gateway's LedgerReversal): export returns every entry of
// every tag exactly once in stream-id order, each line's record parsing
// back (protobuf's JSON parser) to a record equal to the one committed,
// audit fields included; filtered by the record's institution and by time
// window; pages that end inside one millisecond lose and repeat nothing;
// the JSON escapes quotes, backslashes and control characters; an entry
// that does not decode stops the export naming its tag and stream id;
// --out writes the file whole, mode 0600, and refuses a FILE.tmp left
// behind; trim refuses without --yes and a --before less than an hour ago,
// and otherwise removes exactly the older entries; stats counts; bad flags
// exit 2.
//
// Nothing here depends on how fast the machine is or on the wall clock:
// where a test needs entries in one millisecond, or a window, or a cut
// between entries, it takes the entries real commits wrote and adds them
// back under stream ids it chooses (XADD journal:{ab} <ms>-<seq>, in
// 2024), with wide gaps; "every entry" is the window up to the year 2199;
// trim's refusals by Redis's clock use times far inside or outside the hour.
#include "tools/journal/journal_tool.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/record_codec.h"
#include "cache/redis_client.h"
#include "cache/redis_settlement_store.h"
#include "cache/snapshot_store.h"
#include "engine/date.h"
#include "engine/engine.h"
#include "engine/status.h"
#include "engine/text.h"
#include "engine/types.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "medsettle/v1/ledger.pb.h"
#include "medsettle/v1/settlement.pb.h"
#include "proto/contract/convert.h"
#include "proto/contract/ledger_record.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/redis_server.h"

namespace medsettle::journal_tool {
namespace {

using engine::Cat;
using medsettle::testing::RedisServerTest;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr engine::RegionCode kKecheng = 330802;
constexpr int32_t kYear = 2024;
constexpr int64_t kNowUnix = 1'718'000'000;  // 2024-06-10
constexpr int64_t kNowMs = kNowUnix * 1000;
constexpr int64_t kReversedAtMs = kNowMs + 60'000;
const std::string kInstitution = "H3308020001";
const std::string kOtherInstitution = "H3308020007";
// Persons of the snapshot, of the tags 3f (two), 00, a7 and ff.
const std::string kPerson3f = "3fa1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kOther3f = "3f00000000000000000000000000000000000000000000000000000000000001";
const std::string kPerson00 = "00c1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kPersonA7 = "a7b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kPersonFf = "ffb1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kCert = std::string(64, 'c');
const std::string kReversalCert = std::string(64, 'e');
const std::string kPolicySha = std::string(64, '1');
const std::string kCatalogSha = std::string(64, '2');
// The bill's one line: a class A drug without a price cap, so the whole
// amount is in scope whatever the test's total.
constexpr std::string_view kDrugName = "阿莫西林胶囊";

// The audit fields of a settlement: the caller's certificate, the
// credential presented (by kind) and the family member who presented it.
struct Audit {
  std::string certificate_fingerprint = kCert;
  std::string credential_kind = "ID_CARD";
  std::string presenter_key;
  int64_t voucher_issued_at_unix = 0;  // an e-insurance code's
};

::testing::AssertionResult SameMessage(const google::protobuf::Message& a,
                                       const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "messages differ: " << diff;
}

// ---- Reading an export line back ----

// One line of an export, read back: the keys every line has, and its
// record parsed by protobuf's own JSON parser.
struct Line {
  std::string text;  // as written
  std::string id, tag, kind, settlement_id, institution, date;
  int64_t at_ms = -1;
  v1::LedgerRecord settlement;  // kind SETTLE
  v1::LedgerReversal reversal;  // kind REVERSE
  // The record's request id (a REVERSE entry's: the reversal's own).
  std::string request_id() const {
    return kind == "SETTLE" ? settlement.request_id() : reversal.request_id();
  }
};

// The keys of a line, in the order the tool writes them.
const std::vector<std::string> kLineKeys = {"id",          "tag",  "kind",  "settlement_id",
                                            "institution", "date", "at_ms", "record"};

// `text` as a Line; nullopt (and a test failure) unless it is one JSON
// object with exactly kLineKeys, in that order, at_ms an integer, the
// record last and parsing as the message its kind names (unknown fields
// refused).
std::optional<Line> ParseLine(const std::string& text) {
  // JSON as a whole: google.protobuf.Struct takes any JSON object.
  google::protobuf::Struct object;
  const auto parsed = google::protobuf::util::JsonStringToMessage(text, &object);
  if (!parsed.ok()) {
    ADD_FAILURE() << "not JSON (" << parsed.ToString() << "): " << text;
    return std::nullopt;
  }
  std::set<std::string> keys;
  for (const auto& [key, value] : object.fields()) keys.insert(key);
  if (keys != std::set<std::string>(kLineKeys.begin(), kLineKeys.end())) {
    ADD_FAILURE() << "not the keys of a line: " << text;
    return std::nullopt;
  }
  Line line;
  line.text = text;
  auto str = [&object](const std::string& key) {
    const google::protobuf::Value& v = object.fields().at(key);
    EXPECT_EQ(v.kind_case(), google::protobuf::Value::kStringValue) << key;
    return v.string_value();
  };
  line.id = str("id");
  line.tag = str("tag");
  line.kind = str("kind");
  line.settlement_id = str("settlement_id");
  line.institution = str("institution");
  line.date = str("date");
  const google::protobuf::Value& at = object.fields().at("at_ms");
  EXPECT_EQ(at.kind_case(), google::protobuf::Value::kNumberValue) << "at_ms is a JSON number";
  EXPECT_EQ(object.fields().at("record").kind_case(), google::protobuf::Value::kStructValue);

  // The keys in order, at_ms an integer, the record last: the line is this
  // prefix (its values are plain ASCII: no escapes), digits, the record.
  const std::string prefix =
      Cat(R"({"id":")", line.id, R"(","tag":")", line.tag, R"(","kind":")", line.kind,
          R"(","settlement_id":")", line.settlement_id, R"(","institution":")",
          line.institution, R"(","date":")", line.date, R"(","at_ms":)");
  if (text.rfind(prefix, 0) != 0) {
    ADD_FAILURE() << "keys out of order: " << text;
    return std::nullopt;
  }
  size_t k = prefix.size();
  while (k < text.size() && text[k] >= '0' && text[k] <= '9') ++k;
  if (k == prefix.size()) {
    ADD_FAILURE() << "at_ms is not an integer: " << text;
    return std::nullopt;
  }
  line.at_ms = std::stoll(text.substr(prefix.size(), k - prefix.size()));
  EXPECT_EQ(static_cast<double>(line.at_ms), at.number_value());
  const std::string record_key = R"(,"record":)";
  if (text.compare(k, record_key.size(), record_key) != 0 || text.back() != '}') {
    ADD_FAILURE() << "the record is not the last key: " << text;
    return std::nullopt;
  }
  const size_t start = k + record_key.size();
  const std::string record = text.substr(start, text.size() - 1 - start);
  google::protobuf::util::JsonParseOptions strict;
  strict.ignore_unknown_fields = false;
  google::protobuf::util::Status back;
  if (line.kind == "SETTLE") {
    back = google::protobuf::util::JsonStringToMessage(record, &line.settlement, strict);
  } else if (line.kind == "REVERSE") {
    back = google::protobuf::util::JsonStringToMessage(record, &line.reversal, strict);
  } else {
    ADD_FAILURE() << "kind " << line.kind;
    return std::nullopt;
  }
  if (!back.ok()) {
    ADD_FAILURE() << "the record does not parse back (" << back.ToString() << "): " << record;
    return std::nullopt;
  }
  return line;
}

std::vector<Line> ParseLines(const std::string& ndjson) {
  std::vector<Line> out;
  std::istringstream in(ndjson);
  std::string text;
  while (std::getline(in, text)) {
    std::optional<Line> line = ParseLine(text);
    if (line.has_value()) out.push_back(*std::move(line));
  }
  return out;
}

// (ms, seq) of a stream id.
std::pair<int64_t, int64_t> IdParts(const std::string& id) {
  const size_t dash = id.find('-');
  return {std::stoll(id.substr(0, dash)), std::stoll(id.substr(dash + 1))};
}

int64_t MsOf(const std::string& id) { return IdParts(id).first; }

std::string TagOf(int t) {
  static constexpr char kHex[] = "0123456789abcdef";
  return {kHex[t >> 4], kHex[t & 15]};
}

// The latest --to the tool takes (2199-12-31T23:59:59.999Z, Unix ms): a
// window holding every entry, whatever the clocks of the machine and Redis.
const std::string kAllTo = "7258118399999";

// 2024-06-10T00:00:00+08:00 in Unix ms: the day of the chosen stream ids.
constexpr int64_t kDayMs = 1'717'948'800'000;
constexpr int64_t kHourMs = 3'600'000;

// "<ms>-<seq>"
std::string Id(int64_t ms, int64_t seq) { return Cat(ms, "-", seq); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A general-outpatient bill of 2024-06-10 with one line of `total_cents`,
// with the credential the counter scanned (BuildLedgerRecord drops it).
v1::SettleRequest Bill(const std::string& request_id, int64_t total_cents) {
  v1::SettleRequest r;
  r.set_request_id(request_id);
  r.mutable_credential()->set_insurance_card_no("TESTCARD-0001");
  r.mutable_visit()->set_type(v1::VISIT_TYPE_GENERAL_OUTPATIENT);
  r.mutable_visit()->set_service_date("2024-06-10");
  v1::BillItem* item = r.add_items();
  item->set_line_no(1);
  item->set_code("XA0001");
  item->set_name(std::string(kDrugName));
  item->set_quantity("1");
  item->set_unit_price_cents(total_cents);
  item->set_amount_cents(total_cents);
  return r;
}

class JournalToolTest : public RedisServerTest {
 protected:
  void SetUp() override {
    RedisServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    medsettle::testing::ShippedEngine();
    cache::PoolOptions options;
    options.redis = {.host = redis().host(), .port = redis().port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = 2;
    options.acquire_timeout_ms = 5000;
    pool_ = std::make_unique<cache::ConnectionPool>(options);
    store_ = std::make_unique<cache::RedisSettlementStore>(*pool_);
    cache::SnapshotStore snapshots(*pool_);
    absl::StatusOr<std::string> v = snapshots.BeginLoad();
    ASSERT_TRUE(v.ok()) << v.status();
    std::vector<engine::Enrollment> persons;
    for (const std::string& key : {kPerson3f, kOther3f, kPerson00, kPersonA7, kPersonFf}) {
      engine::Enrollment e = medsettle::testing::Person(kQuzhou, kYear);
      e.person_key = key;
      persons.push_back(e);
    }
    absl::StatusOr<int64_t> added = snapshots.PutPersons(*v, persons);
    ASSERT_TRUE(added.ok()) << added.status();
    absl::Status committed = snapshots.Commit(
        *v, {.persons = static_cast<int64_t>(persons.size()), .institutions = 0}, "test");
    ASSERT_TRUE(committed.ok()) << committed;
    version_ = *v;
    address_ = Cat(redis().host(), ":", redis().port());
    dir_ = redis().dir() + "/journal";
    std::filesystem::create_directories(dir_);
  }

  // Settles a bill of `total_cents` for `person` at `institution` as the
  // gateway does (gateway/settlement_handler.cc): reads the person's year,
  // the shipped engine settles, the response and from it the one record
  // are built (with `audit`), the record is committed. The commit as sent.
  cache::SettlementCommit Settle(const std::string& person, const std::string& institution,
                                 const std::string& request_id, int64_t total_cents,
                                 const Audit& audit = {}) {
    absl::StatusOr<cache::SettleRead> read =
        store_->ReadForSettle(version_, person, kYear, institution, request_id);
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return {};
    EXPECT_TRUE(read->enrollment.has_value()) << person;
    if (!read->enrollment.has_value()) return {};
    const v1::SettleRequest request = Bill(request_id, total_cents);
    engine::Claim claim;
    absl::Status converted = contract::ClaimFromProto(request, &claim);
    EXPECT_TRUE(converted.ok()) << converted;
    if (!converted.ok()) return {};
    // The engine admits printable request ids only, as the gateway does;
    // the escaping test commits others, so the engine sees a stand-in.
    claim.request_id = "bill";
    engine::Institution hospital = medsettle::testing::Hospital(kKecheng, 2);
    hospital.institution_id = institution;
    engine::Settlement settlement;
    absl::Status settled = medsettle::testing::ShippedEngine().Settle(
        {.enrollment = &*read->enrollment, .institution = &hospital,
         .year_to_date = &read->accumulators, .claim = &claim},
        &settlement);
    EXPECT_TRUE(settled.ok()) << settled;
    if (!settled.ok()) return {};
    claim.request_id = request_id;
    v1::SettleResponse response;
    contract::SettlementToProto(settlement, claim, person, institution, &response);
    response.set_presenter_key(audit.presenter_key);
    const std::string settlement_id = cache::NewSettlementId(person, kNowMs);
    response.set_settlement_id(settlement_id);
    response.set_status(v1::SETTLEMENT_STATUS_SETTLED);
    response.set_settled_at(engine::FormatRfc3339(kNowUnix, 480));
    EXPECT_EQ(response.amounts().total_cents(), total_cents);
    cache::SettlementCommit c;
    contract::BuildLedgerRecord(request, *read->enrollment, hospital, read->accumulators,
                                response,
                                {.settlement_id = settlement_id,
                                 .institution_id = institution,
                                 .person_key = person,
                                 .content_hash = Cat("hash-of-", request_id),
                                 .credential_kind = audit.credential_kind,
                                 .presenter_key = audit.presenter_key,
                                 .certificate_fingerprint = audit.certificate_fingerprint,
                                 .settled_at_unix_ms = kNowMs,
                                 .snapshot_version = version_,
                                 .policy_sha256 = kPolicySha,
                                 .catalog_sha256 = kCatalogSha,
                                 .voucher_issued_at_unix = audit.voucher_issued_at_unix},
                                &c.record);
    c.expected_version = read->accumulators.version;
    absl::StatusOr<cache::CommitResult> r = store_->CommitSettlement(c);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->outcome, cache::CommitOutcome::kCommitted) << request_id;
    }
    return c;
  }

  // Reverses the settlement of `c` as the gateway does: the stored record,
  // the reversal built from it (the reversing call's certificate, a minute
  // later), committed. The reversal as sent.
  v1::LedgerReversal Reverse(const cache::SettlementCommit& c, const std::string& request_id) {
    absl::StatusOr<cache::StoredSettlement> stored =
        store_->GetSettlement(c.record.settlement_id());
    EXPECT_TRUE(stored.ok()) << stored.status();
    if (!stored.ok()) return {};
    const v1::LedgerRecord& settled = stored->record;
    const std::string why = "patient returned the goods";
    v1::ReverseResponse response;
    response.set_reversal_id(Cat(settled.settlement_id(), "-r"));
    response.set_settlement_id(settled.settlement_id());
    response.set_status(v1::SETTLEMENT_STATUS_REVERSED);
    *response.mutable_amounts() = settled.response().amounts();
    response.set_reversed_at(engine::FormatRfc3339(kReversedAtMs / 1000, 480));
    response.set_reason(why);
    v1::LedgerReversal reversal;
    reversal.set_format(contract::kLedgerRecordFormat);
    reversal.set_settlement_id(settled.settlement_id());
    reversal.set_institution_id(settled.institution_id());
    reversal.set_request_id(request_id);
    reversal.set_reason(why);
    reversal.set_certificate_fingerprint(kReversalCert);
    reversal.set_reversed_at_unix_ms(kReversedAtMs);
    reversal.set_person_key(settled.person_key());
    reversal.set_year(settled.year());
    reversal.set_settlement_date(settled.settlement_date());
    *reversal.mutable_amounts() = settled.response().amounts();
    *reversal.mutable_delta() = settled.response().accumulator_delta();
    *reversal.mutable_response() = response;
    reversal.set_settle_request_id(settled.request_id());
    absl::StatusOr<cache::ReversalResult> r = store_->CommitReversal(settled, reversal);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_FALSE(r->replayed);
    }
    return reversal;
  }

  // Every entry of every tag, read whole with ReadJournal, as (tag, entry).
  std::vector<std::pair<std::string, cache::JournalEntry>> AllEntries() {
    std::vector<std::pair<std::string, cache::JournalEntry>> out;
    for (int t = 0; t < 256; ++t) {
      const std::string tag = TagOf(t);
      absl::StatusOr<std::vector<cache::JournalEntry>> j =
          store_->ReadJournal(tag, 0, INT64_MAX);
      EXPECT_TRUE(j.ok()) << j.status();
      if (!j.ok()) continue;
      for (cache::JournalEntry& e : *j) out.emplace_back(tag, std::move(e));
    }
    return out;
  }

  // One journal entry as a commit wrote it: the fields (name, value) in
  // the order XRANGE returns them, which is the order XADD got them
  // ("kind", then "rec": the record as stored).
  struct RawEntry {
    std::string tag;
    std::string id;
    std::vector<std::pair<std::string, std::string>> fields;
  };

  // Every entry of every tag (XRANGE), in stream order; then empties the
  // journal (DEL), so that a test can add the entries back under stream ids
  // of its choosing (Put) instead of the ids of the moment they were
  // committed.
  std::vector<RawEntry> TakeJournal() {
    std::vector<RawEntry> out;
    for (int t = 0; t < 256; ++t) {
      const std::string tag = TagOf(t);
      const std::string key = cache::JournalKey(tag);
      cache::RedisResult r = pool_->Command({"XRANGE", key, "-", "+"});
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok() || r->elements.empty()) continue;
      for (const cache::RedisReply& item : r->elements) {
        EXPECT_EQ(item.elements.size(), 2u);
        if (item.elements.size() != 2) continue;
        RawEntry e{.tag = tag, .id = item.elements[0].str, .fields = {}};
        const std::vector<cache::RedisReply>& f = item.elements[1].elements;
        for (size_t k = 0; k + 1 < f.size(); k += 2) e.fields.emplace_back(f[k].str, f[k + 1].str);
        out.push_back(std::move(e));
      }
      cache::RedisResult deleted = pool_->Command({"DEL", key});
      EXPECT_TRUE(deleted.ok()) << deleted.status();
    }
    return out;
  }

  // XADD journal:{<e.tag>} <id> with e's fields, those named in `changes`
  // given its values instead (each must be one of e's fields).
  void Put(const RawEntry& e, const std::string& id,
           const std::map<std::string, std::string>& changes = {}) {
    const std::string key = cache::JournalKey(e.tag);
    cache::RedisArgv argv = {"XADD", key, id};
    size_t changed = 0;
    for (const auto& [name, value] : e.fields) {
      auto it = changes.find(name);
      changed += it != changes.end() ? 1 : 0;
      argv.push_back(name);
      argv.push_back(it != changes.end() ? it->second : value);
    }
    ASSERT_EQ(changed, changes.size()) << "a field to change that the entry does not have";
    cache::RedisResult r = pool_->Command(argv);
    ASSERT_TRUE(r.ok()) << key << " " << id << ": " << r.status();
    EXPECT_EQ(r->str, id);
  }

  // XADD journal:{<tag>} <id> of `fields` (name, value, …) as given: an
  // entry written by something other than the store.
  void AddRaw(const std::string& tag, const std::string& id,
              const std::vector<std::string>& fields) {
    const std::string key = cache::JournalKey(tag);  // outlives the views in argv
    cache::RedisArgv argv = {"XADD", key, id};
    for (const std::string& f : fields) argv.push_back(f);
    cache::RedisResult r = pool_->Command(argv);
    ASSERT_TRUE(r.ok()) << tag << " " << id << ": " << r.status();
  }

  // The value of the field `name` of `e` ("" when absent).
  static std::string RawField(const RawEntry& e, const std::string& name) {
    for (const auto& [n, v] : e.fields) {
      if (n == name) return v;
    }
    return "";
  }

  // The serialized record `e` holds (its "rec", unpacked as the store does).
  static std::string RecordBytes(const RawEntry& e) {
    absl::StatusOr<std::string> bytes = cache::UnpackRecord(RawField(e, "rec"), e.id);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  }

  // The request id of the record `e` holds (a REVERSE entry's: the
  // reversal's own).
  static std::string RequestIdOf(const RawEntry& e) {
    const std::string bytes = RecordBytes(e);
    if (RawField(e, "kind") == "REVERSE") {
      v1::LedgerReversal r;
      EXPECT_TRUE(r.ParseFromString(bytes)) << e.id;
      return r.request_id();
    }
    v1::LedgerRecord r;
    EXPECT_TRUE(r.ParseFromString(bytes)) << e.id;
    return r.request_id();
  }
  static std::string RequestIdOf(const cache::JournalEntry& e) {
    EXPECT_TRUE(e.status.ok()) << e.status;
    return e.kind == cache::JournalKind::kSettle ? e.settlement.request_id()
                                                 : e.reversal.request_id();
  }

  // The "rec" of the SETTLE entry `e` with the record's request id
  // `request_id`, packed as the store packs it: for Put's `changes`.
  static std::string WithRequestId(const RawEntry& e, const std::string& request_id) {
    EXPECT_EQ(RawField(e, "kind"), "SETTLE");
    v1::LedgerRecord r;
    EXPECT_TRUE(r.ParseFromString(RecordBytes(e))) << e.id;
    r.set_request_id(request_id);
    r.mutable_request()->set_request_id(request_id);
    r.mutable_response()->set_request_id(request_id);
    return cache::PackRecord(r.SerializeAsString());
  }

  // Redis's clock (TIME) in Unix ms: the clock trim checks against.
  int64_t RedisNowMs() {
    cache::RedisResult r = pool_->Command({"TIME"});
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok() || r->elements.size() != 2) return 0;
    return std::stoll(r->elements[0].str) * 1000 + std::stoll(r->elements[1].str) / 1000;
  }

  // The exit code; stdout and stderr in out_ and err_.
  int Run(std::vector<std::string> args, RunOptions options = {}) {
    out_.str("");
    err_.str("");
    args.push_back("--redis");
    args.push_back(address_);
    return journal_tool::Run(args, out_, err_, options);
  }

  // `export` with the arguments; the parsed lines (exit 0 expected).
  std::vector<Line> Export(std::vector<std::string> args) {
    args.insert(args.begin(), "export");
    const int code = Run(args);
    EXPECT_EQ(code, 0) << err_.str();
    return ParseLines(out_.str());
  }

  std::string version_;
  std::string address_;
  std::string dir_;
  std::unique_ptr<cache::ConnectionPool> pool_;
  std::unique_ptr<cache::RedisSettlementStore> store_;
  std::ostringstream out_, err_;
};

TEST_F(JournalToolTest, ExportHasEveryEntryOnceInStreamIdOrderWithItsWholeRecord) {
  std::vector<cache::SettlementCommit> commits;
  std::vector<Audit> audits;
  const std::vector<std::string> persons = {kPerson3f, kPerson00, kPersonA7, kPersonFf, kOther3f};
  for (int i = 0; i < 15; ++i) {
    Audit audit;
    if (i % 3 == 1) {
      audit = {.certificate_fingerprint = kCert, .credential_kind = "EC_TOKEN",
               .presenter_key = kPersonA7, .voucher_issued_at_unix = kNowUnix - 600};
    }
    audits.push_back(audit);
    commits.push_back(Settle(persons[static_cast<size_t>(i) % persons.size()],
                             i % 2 == 0 ? kInstitution : kOtherInstitution, Cat("r", i),
                             10'000 + i, audit));
  }
  std::map<std::string, v1::LedgerReversal> reversals;
  for (size_t i : {size_t{4}, size_t{7}}) {
    reversals[commits[i].record.settlement_id()] = Reverse(commits[i], Cat("undo-", i));
  }
  ASSERT_FALSE(HasFailure());

  std::vector<Line> lines = Export({"--from", "0", "--to", kAllTo});
  const auto all = AllEntries();
  ASSERT_EQ(lines.size(), 17u);
  ASSERT_EQ(lines.size(), all.size());

  // Stream-id order across the tags, equal ids by tag; each entry once.
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t k = 0; k < lines.size(); ++k) {
    const std::string& id = lines[k].id;
    const std::string& tag = lines[k].tag;
    EXPECT_TRUE(seen.insert({tag, id}).second) << "twice: " << tag << " " << id;
    if (k > 0) {
      const auto before = std::make_tuple(IdParts(lines[k - 1].id), lines[k - 1].tag);
      EXPECT_LT(before, std::make_tuple(IdParts(id), tag)) << "line " << k;
    }
  }
  for (const auto& [tag, e] : all) EXPECT_TRUE(seen.count({tag, e.stream_id})) << e.stream_id;

  // Every line's record parses back to the record committed, whole.
  std::map<std::string, const Line*> settles, reverses;
  for (const Line& l : lines) {
    (l.kind == "SETTLE" ? settles : reverses)[l.settlement_id] = &l;
  }
  ASSERT_EQ(settles.size(), 15u);
  ASSERT_EQ(reverses.size(), 2u);
  for (size_t i = 0; i < commits.size(); ++i) {
    const v1::LedgerRecord& committed = commits[i].record;
    ASSERT_TRUE(settles.count(committed.settlement_id())) << committed.settlement_id();
    const Line& l = *settles[committed.settlement_id()];
    EXPECT_EQ(l.tag, committed.person_key().substr(0, 2));
    EXPECT_EQ(l.institution, committed.institution_id());
    EXPECT_EQ(l.date, "2024-06-10");
    EXPECT_EQ(l.at_ms, kNowMs);
    EXPECT_TRUE(SameMessage(l.settlement, committed)) << l.text;
    // What that equality covers, by name: the audit fields, the bill
    // without its credential, the records as used, the rules, the result.
    const v1::LedgerRecord& r = l.settlement;
    EXPECT_EQ(r.certificate_fingerprint(), kCert);
    EXPECT_EQ(r.credential_kind(), audits[i].credential_kind);
    EXPECT_EQ(r.presenter_key(), audits[i].presenter_key);
    EXPECT_EQ(r.voucher_issued_at_unix(), audits[i].voucher_issued_at_unix);
    EXPECT_EQ(r.request_id(), Cat("r", i));
    EXPECT_EQ(r.content_hash(), Cat("hash-of-r", i));
    ASSERT_EQ(r.request().items_size(), 1);
    EXPECT_EQ(r.request().items(0).name(), kDrugName);
    EXPECT_FALSE(r.request().has_credential()) << "never the credential";
    EXPECT_EQ(r.enrollment().person_key(), committed.person_key());
    EXPECT_EQ(r.institution().institution_id(), committed.institution_id());
    EXPECT_EQ(r.snapshot_version(), version_);
    EXPECT_FALSE(r.policy_id().empty());
    EXPECT_EQ(r.policy_sha256(), kPolicySha);
    EXPECT_EQ(r.catalog_sha256(), kCatalogSha);
    EXPECT_EQ(r.response().amounts().total_cents(), 10'000 + static_cast<int64_t>(i));
    const v1::Amounts& a = r.response().amounts();
    EXPECT_EQ(a.base_fund_cents() + a.critical_illness_cents() + a.supplementary_cents() +
                  a.patient_cents(),
              a.total_cents())
        << "the payers' shares";
    EXPECT_EQ(r.response().lines_size(), 1);
    EXPECT_GT(r.response().trace_size(), 0);
    EXPECT_TRUE(r.response().has_accumulator_delta());
    EXPECT_TRUE(r.has_year_to_date_before());
    // Protobuf's JSON: the proto field names, int64 as strings.
    EXPECT_NE(l.text.find(Cat(R"("certificate_fingerprint":")", kCert, "\"")), std::string::npos);
    EXPECT_NE(l.text.find(Cat(R"("credential_kind":")", audits[i].credential_kind, "\"")),
              std::string::npos);
    EXPECT_NE(l.text.find(Cat(R"("settled_at_unix_ms":")", kNowMs, "\"")), std::string::npos)
        << l.text;
    EXPECT_NE(l.text.find(Cat(R"("total_cents":")", 10'000 + i, "\"")), std::string::npos);
    if (!audits[i].presenter_key.empty()) {
      EXPECT_NE(l.text.find(Cat(R"("presenter_key":")", kPersonA7, "\"")), std::string::npos);
    }
  }
  for (size_t i : {size_t{4}, size_t{7}}) {
    const std::string& id = commits[i].record.settlement_id();
    ASSERT_TRUE(reverses.count(id));
    const Line& l = *reverses[id];
    EXPECT_EQ(l.tag, id.substr(0, 2));
    EXPECT_EQ(l.institution, commits[i].record.institution_id());
    EXPECT_EQ(l.date, "2024-06-10") << "the settlement's accounting day";
    EXPECT_EQ(l.at_ms, kReversedAtMs);
    EXPECT_TRUE(SameMessage(l.reversal, reversals.at(id))) << l.text;
    EXPECT_EQ(l.reversal.request_id(), Cat("undo-", i));
    EXPECT_EQ(l.reversal.settle_request_id(), Cat("r", i));
    EXPECT_EQ(l.reversal.certificate_fingerprint(), kReversalCert)
        << "the reversing call's certificate";
    EXPECT_EQ(l.reversal.amounts().total_cents(), 10'000 + static_cast<int64_t>(i))
        << "positive: subtract it";
    EXPECT_TRUE(SameMessage(l.reversal.delta(), commits[i].record.response().accumulator_delta()));
    EXPECT_NE(l.text.find(Cat(R"("reversed_at_unix_ms":")", kReversedAtMs, "\"")),
              std::string::npos)
        << l.text;
  }

  // The summary (stderr without --out), from the records' amounts.
  int64_t settled = 0;
  for (const cache::SettlementCommit& c : commits) {
    settled += c.record.response().amounts().total_cents();
  }
  int64_t reversed = 0;
  for (const auto& [id, r] : reversals) reversed += r.amounts().total_cents();
  ASSERT_EQ(reversed, 10'004 + 10'007);
  const std::string summary = err_.str();
  EXPECT_NE(summary.find("exported 17 entries"), std::string::npos) << summary;
  EXPECT_NE(summary.find(Cat("SETTLE: 15 entries, a.total ", settled, " 分")), std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("REVERSE: 2 entries, a.total ", reversed, " 分")),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("net a.total: ", settled - reversed, " 分")), std::string::npos);
  EXPECT_NE(summary.find(Cat("first: ", lines.front().id, " (tag ", lines.front().tag)),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("last: ", lines.back().id)), std::string::npos) << summary;
}

TEST_F(JournalToolTest, ExportFiltersByInstitutionAndTimeWindow) {
  // Three batches of real commits, added back under chosen ids: the early
  // batch before the window [09:00, 10:00) of 2024-06-10 (+08:00), the middle
  // one in it, the late one after it, with an entry a millisecond from each
  // edge and on the edges themselves. The window is of stream ids: the
  // records' own times (at_ms) stay those of the commits.
  for (const char* prefix : {"early", "middle", "late"}) {
    Settle(kPerson3f, kInstitution, Cat(prefix, "-1"), 100);
    Settle(kPerson00, kOtherInstitution, Cat(prefix, "-2"), 200);
    Settle(kPersonFf, kInstitution, Cat(prefix, "-3"), 300);
  }
  ASSERT_FALSE(HasFailure());
  const int64_t from = kDayMs + 9 * kHourMs;  // 2024-06-10T09:00:00+08:00
  const int64_t to = kDayMs + 10 * kHourMs;
  const std::map<std::string, std::string> ids = {
      {"early-1", Id(from - kHourMs, 0)},  // tag 3f
      {"early-2", Id(from - 1, 0)},        // tag 00: the last millisecond before the window
      {"early-3", Id(from - 1, 7)},        // tag ff
      {"middle-1", Id(from, 0)},           // the window's first id
      {"middle-2", Id(from + kHourMs / 2, 0)},
      {"middle-3", Id(to - 1, 9)},         // its last millisecond
      {"late-1", Id(to, 0)},               // --to itself: outside
      {"late-2", Id(to, 3)},
      {"late-3", Id(to + kHourMs, 0)},
  };
  const std::vector<RawEntry> entries = TakeJournal();
  ASSERT_EQ(entries.size(), 9u);
  for (const RawEntry& e : entries) {  // each tag's in commit order: early, middle, late
    ASSERT_TRUE(ids.count(RequestIdOf(e))) << RequestIdOf(e);
    Put(e, ids.at(RequestIdOf(e)));
  }
  ASSERT_FALSE(HasFailure());

  auto request_ids = [&](std::vector<std::string> args) {
    std::set<std::string> out;
    for (const Line& l : Export(std::move(args))) out.insert(l.request_id());
    return out;
  };
  const std::set<std::string> middle = {"middle-1", "middle-2", "middle-3"};
  EXPECT_EQ(request_ids({"--from", std::to_string(from), "--to", std::to_string(to)}), middle);
  // The same window as RFC 3339: the tool's own rendering (+08:00, ms), and
  // in UTC as an operator may write it.
  EXPECT_EQ(request_ids({"--from", FormatTime(from), "--to", FormatTime(to)}), middle);
  EXPECT_EQ(request_ids({"--from", "2024-06-10T01:00:00Z", "--to", "2024-06-10T02:00:00Z"}),
            middle);
  EXPECT_EQ(err_.str().find("warning"), std::string::npos) << "a window in the past";

  // One institution (the record's), the whole journal, and within the
  // window.
  std::vector<Line> other =
      Export({"--from", "0", "--to", kAllTo, "--institution", kOtherInstitution});
  std::set<std::string> got;
  for (const Line& l : other) {
    EXPECT_EQ(l.institution, kOtherInstitution);
    EXPECT_EQ(l.settlement.institution_id(), kOtherInstitution);
    got.insert(l.request_id());
  }
  EXPECT_EQ(got, (std::set<std::string>{"early-2", "middle-2", "late-2"}));
  EXPECT_NE(err_.str().find("exported 3 entries"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("of institution " + kOtherInstitution), std::string::npos);
  EXPECT_NE(err_.str().find("SETTLE: 3 entries, a.total 600 分"), std::string::npos)
      << err_.str();
  EXPECT_EQ(request_ids({"--from", std::to_string(from), "--to", std::to_string(to),
                         "--institution", kOtherInstitution}),
            (std::set<std::string>{"middle-2"}));

  // An empty window exports nothing and says so.
  EXPECT_TRUE(Export({"--from", "1", "--to", "2"}).empty());
  EXPECT_NE(err_.str().find("exported 0 entries"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("first: (none)"), std::string::npos) << err_.str();
}

TEST_F(JournalToolTest, PagesEndingInsideOneMillisecondLoseAndRepeatNothing) {
  // A burst of commits puts several entries of one tag in one millisecond
  // (<ms>-0, <ms>-1, …). Real commits land there only if the machine is
  // fast enough, so the entries of one real commit per tag are added back
  // under chosen ids instead: bursts of up to 7 in one millisecond, ids
  // that two or three tags share, and page boundaries inside a millisecond
  // for every page size below. Each copy's record carries a request id
  // naming the stream id it was added under.
  Settle(kPerson3f, kInstitution, "template-3f", 10);
  Settle(kPerson00, kOtherInstitution, "template-00", 20);
  Settle(kPersonA7, kInstitution, "template-a7", 30);
  Settle(kPersonFf, kInstitution, "template-ff", 40);
  ASSERT_FALSE(HasFailure());
  std::map<std::string, RawEntry> templates;
  for (RawEntry& e : TakeJournal()) templates[e.tag] = std::move(e);
  ASSERT_EQ(templates.size(), 4u);
  ASSERT_TRUE(AllEntries().empty());

  const int64_t ms = kDayMs + 14 * kHourMs;  // 2024-06-10T14:00:00+08:00
  struct Burst {
    std::string tag;
    int64_t offset_ms;  // after `ms`
    int64_t entries;    // <ms>-0 … <ms>-(entries-1)
  };
  const std::vector<Burst> bursts = {
      {"3f", 0, 5}, {"3f", 1, 2}, {"3f", 2, 1}, {"3f", 5, 3},  // 11 entries
      {"00", 0, 2}, {"00", 1, 1}, {"00", 3, 4},                // 7: one page of 7 exactly
      {"a7", 0, 1}, {"a7", 2, 3},                              // 4
      {"ff", 1, 7}, {"ff", 4, 1},                              // 8
  };
  // (ms, seq, tag): the order export promises; the request id names the id.
  std::vector<std::tuple<int64_t, int64_t, std::string>> want;
  for (const Burst& b : bursts) {
    for (int64_t seq = 0; seq < b.entries; ++seq) {
      const std::string id = Id(ms + b.offset_ms, seq);
      const RawEntry& t = templates.at(b.tag);
      Put(t, id, {{"rec", WithRequestId(t, Cat(b.tag, ":", id))}});
      want.emplace_back(ms + b.offset_ms, seq, b.tag);
    }
  }
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(want.size(), 30u);
  std::sort(want.begin(), want.end());

  // The expected lines of the window [ms + first, ms + end), as "tag:id".
  auto expected = [&](int64_t first, int64_t end) {
    std::vector<std::string> out;
    for (const auto& [m, seq, tag] : want) {
      if (m >= ms + first && m < ms + end) out.push_back(Cat(tag, ":", Id(m, seq)));
    }
    return out;
  };
  auto exported = [](const std::vector<Line>& lines) {
    std::vector<std::string> out;
    for (const Line& l : lines) {
      out.push_back(Cat(l.tag, ":", l.id));
      EXPECT_EQ(l.request_id(), out.back()) << "the entry added under that id";
    }
    return out;
  };

  // One page per tag: every entry once, in stream-id order, equal ids by tag.
  const std::string to = std::to_string(ms + 1000);
  ASSERT_EQ(Run({"export", "--from", "0", "--to", to, "--page", "1000"}), 0) << err_.str();
  const std::string whole = out_.str();
  EXPECT_EQ(exported(ParseLines(whole)), expected(0, 1000));
  EXPECT_NE(err_.str().find("(256 reads)"), std::string::npos) << err_.str();

  // Smaller pages give the same bytes. Page 1 puts a boundary between every
  // two entries of a tag, so inside every burst; 2 and 3 inside the bursts
  // of 3f, 00 and ff; 7 ends ff's page at the end of its burst of 7 and
  // 00's first page full at its last entry (the next read finds nothing).
  // The reads: one per page, plus the empty one after a full last page.
  const std::map<std::string, int> reads = {{"1", 286}, {"2", 270}, {"3", 264}, {"7", 259}};
  for (const auto& [page, count] : reads) {
    ASSERT_EQ(Run({"export", "--from", "0", "--to", to, "--page", page}), 0) << err_.str();
    EXPECT_EQ(out_.str(), whole) << "--page " << page;
    EXPECT_NE(err_.str().find(Cat("(", count, " reads)")), std::string::npos)
        << "--page " << page << ": " << err_.str();
  }

  // A window that starts and ends between bursts, [ms + 1, ms + 5): every
  // page size gives its entries once, in order.
  const std::vector<std::string> inner = expected(1, 5);
  ASSERT_EQ(inner.size(), 19u);
  for (const char* page : {"1", "2", "3", "7", "1000"}) {
    EXPECT_EQ(exported(Export({"--from", std::to_string(ms + 1), "--to", std::to_string(ms + 5),
                               "--page", page})),
              inner)
        << "--page " << page;
  }

  // The library's paged read of one tag, after an id inside a millisecond.
  std::vector<std::string> want3f;
  for (const auto& [m, seq, tag] : want) {
    if (tag == "3f") want3f.push_back(Id(m, seq));
  }
  std::vector<std::string> paged;
  absl::StatusOr<std::vector<cache::JournalEntry>> page =
      store_->ReadJournal("3f", 0, INT64_MAX, 2);
  for (size_t pages = 0; page.ok() && !page->empty() && pages <= want3f.size(); ++pages) {
    for (const cache::JournalEntry& e : *page) paged.push_back(e.stream_id);
    page = store_->ReadJournalAfter("3f", paged.back(), INT64_MAX, 2);
  }
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(paged, want3f);
}

TEST_F(JournalToolTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string odd = "r\"q\\1/x";
  Settle(kPerson3f, kInstitution, odd, 500);
  Settle(kPerson00, kInstitution, "tab\there\x01", 600,
         {.certificate_fingerprint = "", .credential_kind = "INSURANCE_CARD"});
  ASSERT_FALSE(HasFailure());
  std::vector<Line> lines = Export({"--from", "0", "--to", kAllTo});
  ASSERT_EQ(lines.size(), 2u);
  std::set<std::string> request_ids;
  for (const Line& l : lines) request_ids.insert(l.request_id());
  EXPECT_EQ(request_ids, (std::set<std::string>{odd, "tab\there\x01"}));
  EXPECT_NE(out_.str().find(R"("request_id":"r\"q\\1/x")"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(R"("request_id":"tab\there\u0001")"), std::string::npos)
      << out_.str();
  // UTF-8 text of the bill (the item's name) passes through unescaped.
  EXPECT_NE(out_.str().find(Cat(R"("name":")", kDrugName, "\"")), std::string::npos)
      << out_.str();
  // A dev call's empty certificate: a field at its default is omitted from
  // protobuf's JSON, and reads back as "".
  for (const Line& l : lines) {
    if (l.settlement.request_id() != odd) {
      EXPECT_EQ(l.text.find("certificate_fingerprint"), std::string::npos) << l.text;
      EXPECT_EQ(l.settlement.certificate_fingerprint(), "");
      EXPECT_EQ(l.settlement.credential_kind(), "INSURANCE_CARD");
    }
  }

  // UTF-8 passes through; bytes that are not UTF-8 are refused, not altered.
  EXPECT_EQ(*JsonString("医保\x7f"), "\"医保\\u007f\"");
  for (std::string_view bad : {std::string_view("\xff"), std::string_view("a\xe5\x8c"),
                               std::string_view("\xc0\xaf"), std::string_view("\xed\xa0\x80")}) {
    absl::StatusOr<std::string> s = JsonString(bad);
    EXPECT_EQ(engine::ReasonOf(s.status()), reason::kJournalNotExportable) << bad;
  }
  cache::JournalEntry e;
  e.stream_id = "1-0";
  e.settlement.set_settlement_id("bad\xff");
  absl::StatusOr<std::string> line = EntryJson("3f", e);
  EXPECT_EQ(engine::ReasonOf(line.status()), reason::kJournalNotExportable);
  EXPECT_EQ(engine::FieldOf(line.status()), "settlement_id");
  EXPECT_NE(std::string(line.status().message()).find("1-0"), std::string::npos);
  // An entry that did not decode is no line.
  e.settlement.set_settlement_id("3f-0190000000000-0000000000000000");
  e.status = absl::InternalError("LEDGER_RECORD_INVALID: does not parse");
  line = EntryJson("3f", e);
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(engine::ReasonOf(line.status()), reason::kJournalEntryInvalid);
  EXPECT_NE(std::string(line.status().message()).find("journal entry 1-0 of tag 3f"),
            std::string::npos)
      << line.status();
}

TEST_F(JournalToolTest, AnEntryThatDoesNotDecodeStopsTheExportNamingIt) {
  // Two good entries (tags 3f and a7, at chosen ids), then in tag 5a,
  // after them, an entry written by something other than the store.
  Settle(kPerson3f, kInstitution, "good-1", 100);
  Settle(kPersonA7, kOtherInstitution, "good-2", 200);
  ASSERT_FALSE(HasFailure());
  const std::vector<RawEntry> good = TakeJournal();
  ASSERT_EQ(good.size(), 2u);
  Put(good[0], Id(kDayMs, 0));
  Put(good[1], Id(kDayMs + 1, 0));
  ASSERT_FALSE(HasFailure());
  const std::string bad_id = Id(kDayMs + 10, 0);

  v1::LedgerRecord future_format;
  ASSERT_TRUE(future_format.ParseFromString(RecordBytes(good[0])));
  future_format.set_format(contract::kLedgerRecordFormat + 1);
  const std::string packed = RawField(good[0], "rec");
  ASSERT_GT(packed.size(), 8u);
  struct Bogus {
    std::string what;
    std::vector<std::string> fields;
    std::string store_reason;  // what the store says of it
  };
  const std::vector<Bogus> cases = {
      {"not a record", {"kind", "SETTLE", "rec", "not a record"}, "LEDGER_RECORD_INVALID"},
      {"an entry of the journal's old layout, without rec",
       {"kind", "SETTLE", "settlement_id", "5a-0190000000000-0000000000000000", "request_id",
        "old", "a.total", "100"},
       "LEDGER_RECORD_INVALID"},
      {"a kind that is neither SETTLE nor REVERSE", {"kind", "REFUND", "rec", packed},
       "SETTLEMENT_RECORD_CORRUPT"},
      {"a record cut short", {"kind", "SETTLE", "rec", packed.substr(0, packed.size() / 2)},
       "LEDGER_RECORD_INVALID"},
      {"a record format this build does not know",
       {"kind", "SETTLE", "rec", cache::PackRecord(future_format.SerializeAsString())},
       "LEDGER_RECORD_INVALID"},
  };
  const std::string path = dir_ + "/journal.ndjson";
  for (const Bogus& b : cases) {
    SCOPED_TRACE(b.what);
    ASSERT_TRUE(pool_->Command({"DEL", cache::JournalKey("5a")}).ok());
    AddRaw("5a", bad_id, b.fields);
    ASSERT_FALSE(HasFailure());
    {
      absl::StatusOr<std::vector<cache::JournalEntry>> j =
          store_->ReadJournal("5a", 0, INT64_MAX);
      ASSERT_TRUE(j.ok()) << j.status();
      ASSERT_EQ(j->size(), 1u);
      ASSERT_FALSE((*j)[0].status.ok()) << "the store reads it as not decoding";
    }

    // To standard output: the lines before it, then the stop, naming it.
    EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo}), 1);
    const std::string err = err_.str();
    EXPECT_NE(err.find(Cat("INTERNAL ", reason::kJournalEntryInvalid)), std::string::npos)
        << err;
    EXPECT_NE(err.find(Cat("journal entry ", bad_id, " of tag 5a (journal:{5a})")),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(b.store_reason), std::string::npos) << err;
    EXPECT_EQ(err.find("exported"), std::string::npos) << "no summary: " << err;
    const std::vector<Line> before = ParseLines(out_.str());
    ASSERT_EQ(before.size(), 2u) << out_.str();
    EXPECT_EQ(before[0].request_id(), "good-1");
    EXPECT_EQ(before[1].request_id(), "good-2");

    // Also under --institution: whose entry it is cannot be read.
    EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--institution", kInstitution}), 1);
    EXPECT_NE(err_.str().find(std::string(reason::kJournalEntryInvalid)), std::string::npos)
        << err_.str();

    // To a file: nothing renamed into place, no FILE.tmp left.
    EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", path}), 1);
    EXPECT_NE(err_.str().find(bad_id), std::string::npos) << err_.str();
    EXPECT_EQ(out_.str(), "");
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

    // A window that ends before it exports.
    EXPECT_EQ(Export({"--from", "0", "--to", std::to_string(kDayMs + 10)}).size(), 2u);
  }
}

// The permission bits of `path` (07777 of st_mode), -1 when it is missing.
int ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

TEST_F(JournalToolTest, ExportToAFileRenamesItIntoPlaceAndPrintsTheSummary) {
  Settle(kPerson3f, kInstitution, "f1", 700);
  Settle(kPersonA7, kOtherInstitution, "f2", 800);
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(Run({"export", "--from", "0", "--to", kAllTo}), 0) << err_.str();
  const std::string to_stdout = out_.str();

  // Written whole, and readable by its owner only (person keys, certificate
  // fingerprints), even under a umask that would let everyone read it.
  const std::string path = dir_ + "/journal.ndjson";
  const mode_t umask_before = ::umask(0);
  const int code = Run({"export", "--from", "0", "--to", kAllTo, "--out", path});
  ::umask(umask_before);
  ASSERT_EQ(code, 0) << err_.str();
  EXPECT_EQ(ReadAll(path), to_stdout);
  EXPECT_EQ(ParseLines(ReadAll(path)).size(), 2u);
  EXPECT_EQ(ModeOf(path), 0600);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_NE(out_.str().find("exported 2 entries"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("to " + path), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("SETTLE: 2 entries, a.total 1500 分"), std::string::npos);
  // The window ends in 2199: still open, and the tool says so.
  EXPECT_NE(err_.str().find("warning: --to"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("is in the future"), std::string::npos) << err_.str();
  ASSERT_EQ(Run({"export", "--from", "0", "--to", "1", "--out", dir_ + "/empty.ndjson"}), 0);
  EXPECT_EQ(err_.str(), "") << "a window in the past: no warning";
  EXPECT_EQ(ReadAll(dir_ + "/empty.ndjson"), "");
  EXPECT_EQ(ModeOf(dir_ + "/empty.ndjson"), 0600) << "under the test's own umask too";

  // A directory that does not exist: refused, nothing left behind.
  const std::string nowhere = dir_ + "/missing/journal.ndjson";
  EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", nowhere}), 1);
  EXPECT_NE(err_.str().find("--out"), std::string::npos) << err_.str();
  EXPECT_FALSE(std::filesystem::exists(nowhere + ".tmp"));

  // FILE.tmp left by a killed export: refused, naming it; neither it nor
  // the older FILE is touched.
  {
    std::ofstream(path + ".tmp") << "half an export";
  }
  EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", path}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kJournalExportTmpExists)), std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find(path + ".tmp already exists"), std::string::npos) << err_.str();
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(ReadAll(path + ".tmp"), "half an export");
  EXPECT_EQ(ReadAll(path), to_stdout);
  // A symbolic link there is not followed either.
  std::filesystem::remove(path + ".tmp");
  std::filesystem::create_symlink(dir_ + "/elsewhere", path + ".tmp");
  EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", path}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kJournalExportTmpExists)), std::string::npos)
      << err_.str();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/elsewhere"));
  std::filesystem::remove(path + ".tmp");

  // An export that fails midway (an entry that does not decode, added by
  // hand) removes its FILE.tmp and leaves the older FILE as it was.
  AddRaw("5a", "1-0", {"kind", "SETTLE", "rec", "garbage"});
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", path}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kJournalEntryInvalid)), std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("journal entry 1-0 of tag 5a"), std::string::npos) << err_.str();
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(ReadAll(path), to_stdout);
}

TEST_F(JournalToolTest, TrimRefusesWithoutYesAndTooRecentTimesThenCutsExactly) {
  Settle(kPerson3f, kInstitution, "old-1", 100);
  Settle(kPerson00, kInstitution, "old-2", 100);
  cache::SettlementCommit reversed = Settle(kPersonFf, kInstitution, "old-3", 100);
  Reverse(reversed, "old-undo");
  Settle(kPersonA7, kInstitution, "new-1", 100);
  Settle(kPerson3f, kInstitution, "new-2", 100);
  ASSERT_FALSE(HasFailure());
  // Added back under chosen ids around the cut, 2024-06-11T00:00:00+08:00:
  // a day before it, its last millisecond, the cut itself.
  const int64_t cut = kDayMs + 24 * kHourMs;
  const std::map<std::string, std::string> ids = {
      {"old-1", Id(cut - 24 * kHourMs, 0)},  // tag 3f
      {"old-2", Id(cut - 24 * kHourMs, 0)},  // tag 00, the same id
      {"old-3", Id(cut - 1, 0)},             // tag ff
      {"old-undo", Id(cut - 1, 1)},          // tag ff, the same millisecond
      {"new-1", Id(cut, 0)},                 // tag a7: ids from the cut on stay
      {"new-2", Id(cut, 1)},                 // tag 3f
  };
  const std::vector<RawEntry> entries = TakeJournal();
  ASSERT_EQ(entries.size(), 6u);
  for (const RawEntry& e : entries) {  // each tag's in commit order: old, then new
    ASSERT_TRUE(ids.count(RequestIdOf(e))) << RequestIdOf(e);
    Put(e, ids.at(RequestIdOf(e)));
  }
  ASSERT_FALSE(HasFailure());
  ASSERT_EQ(AllEntries().size(), 6u);
  const std::string before = std::to_string(cut);

  // No --yes: a usage error, nothing removed.
  EXPECT_EQ(Run({"trim", "--before", before}), 2);
  EXPECT_NE(err_.str().find("--yes"), std::string::npos) << err_.str();
  EXPECT_EQ(AllEntries().size(), 6u);

  // Less than an hour before now, by Redis's clock: ten minutes ago (50
  // minutes inside the hour) and the year 2199; by a clock set just short
  // of the hour after the cut. Refused, nothing removed.
  const int64_t redis_now = RedisNowMs();
  ASSERT_GT(redis_now, cut + 24 * kHourMs) << "Redis's clock is not before 2024-06-12";
  for (const std::string& recent : {FormatTime(redis_now - kHourMs / 6), kAllTo}) {
    EXPECT_EQ(Run({"trim", "--before", recent, "--yes"}), 1) << recent;
    EXPECT_NE(err_.str().find(std::string(reason::kTrimTooRecent)), std::string::npos)
        << err_.str();
    EXPECT_NE(err_.str().find("now minus 1 hour"), std::string::npos) << err_.str();
  }
  EXPECT_EQ(Run({"trim", "--before", before, "--yes"}, {.now_ms = cut + kTrimMinAgeMs - 1}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kTrimTooRecent)), std::string::npos)
      << err_.str();
  EXPECT_EQ(AllEntries().size(), 6u);

  // Exported, then trimmed at the same time an hour later: the trim removes
  // exactly what the export wrote.
  const std::string path = dir_ + "/before-cut.ndjson";
  ASSERT_EQ(Run({"export", "--from", "0", "--to", before, "--out", path}), 0) << err_.str();
  std::set<std::string> exported;
  for (const Line& l : ParseLines(ReadAll(path))) exported.insert(l.request_id());
  EXPECT_EQ(exported, (std::set<std::string>{"old-1", "old-2", "old-3", "old-undo"}));
  ASSERT_EQ(Run({"trim", "--before", FormatTime(cut), "--yes"},
                {.now_ms = cut + kTrimMinAgeMs}),
            0)
      << err_.str();
  EXPECT_NE(out_.str().find("removed 4 entries"), std::string::npos) << out_.str();
  const auto left = AllEntries();
  ASSERT_EQ(left.size(), 2u);
  for (const auto& [tag, e] : left) {
    EXPECT_GE(MsOf(e.stream_id), cut);
    EXPECT_EQ(RequestIdOf(e).rfind("new", 0), 0u) << RequestIdOf(e);
  }
  // Again, by Redis's clock (the cut lies long before it): nothing more.
  ASSERT_EQ(Run({"trim", "--before", before, "--yes"}), 0) << err_.str();
  EXPECT_NE(out_.str().find("removed 0 entries"), std::string::npos) << out_.str();
  EXPECT_EQ(AllEntries().size(), 2u);
}

TEST_F(JournalToolTest, StatsCountsEveryTagAndFindsTheOldestAndNewest) {
  ASSERT_EQ(Run({"stats"}), 0) << err_.str();
  EXPECT_NE(out_.str().find("entries: 0 in 0 of 256 tags"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("oldest: (none)"), std::string::npos) << out_.str();

  Settle(kPersonFf, kInstitution, "s1", 100);
  Settle(kPerson3f, kInstitution, "s2", 100);
  cache::SettlementCommit c = Settle(kPerson00, kInstitution, "s3", 100);
  Reverse(c, "s3-undo");
  ASSERT_FALSE(HasFailure());
  const auto all = AllEntries();
  ASSERT_EQ(all.size(), 4u);
  auto order = [](const auto& a, const auto& b) {
    return std::make_tuple(IdParts(a.second.stream_id), a.first) <
           std::make_tuple(IdParts(b.second.stream_id), b.first);
  };
  const auto& oldest = *std::min_element(all.begin(), all.end(), order);
  const auto& newest = *std::max_element(all.begin(), all.end(), order);
  ASSERT_EQ(Run({"stats"}), 0) << err_.str();
  EXPECT_NE(out_.str().find("entries: 4 in 3 of 256 tags"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(Cat("oldest: ", oldest.second.stream_id, " (tag ", oldest.first)),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(Cat("newest: ", newest.second.stream_id, " (tag ", newest.first)),
            std::string::npos)
      << out_.str();
}

TEST(JournalToolFlags, BadFlagsExit2AndTouchNothing) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"dump"},
      {"export"},
      {"export", "--from", "0"},
      {"export", "--to", "10"},
      {"export", "--from", "yesterday", "--to", "10"},
      {"export", "--from", "2025-01-01T00:00:00", "--to", "10"},   // no offset
      {"export", "--from", "2025-01-01 00:00:00+08:00", "--to", "10"},
      {"export", "--from", "-5", "--to", "10"},
      {"export", "--from", "10", "--to", "10"},                    // empty window
      {"export", "--from", "20", "--to", "10"},
      {"export", "--from", "0", "--to", "99999999999999999"},      // after 2199
      {"export", "--from", "0", "--to", "10", "--page", "0"},
      {"export", "--from", "0", "--to", "10", "--page", "10001"},
      {"export", "--from", "0", "--to", "10", "--yes"},            // trim's flag
      {"export", "--from", "0", "--to", "10", "--before", "5"},
      {"export", "--from", "0", "--to", "10", "--colour", "red"},
      {"export", "--from", "0", "--to", "10", "extra"},
      {"export", "--from", "0", "--from", "1", "--to", "10"},
      {"export", "--from", "0", "--to", "10", "--institution"},
      {"export", "--from", "0", "--to", "10", "--institution", ""},
      {"export", "--from", "0", "--to", "10", "--redis", "localhost"},
      {"export", "--from", "0", "--to", "10", "--redis", "localhost:0"},
      {"trim"},
      {"trim", "--yes"},
      {"trim", "--before", "soon", "--yes"},
      {"trim", "--before", "1000"},                                // no --yes
      {"trim", "--before", "1000", "--yes", "--from", "0"},
      {"stats", "--from", "0"},
      {"stats", "--redis", "nohost"},
  };
  for (const std::vector<std::string>& args : cases) {
    std::ostringstream out, err;
    std::string joined;
    for (const std::string& a : args) joined += a + " ";
    EXPECT_EQ(journal_tool::Run(args, out, err), 2) << joined << "\n" << err.str();
    EXPECT_EQ(out.str(), "") << joined;
    EXPECT_NE(err.str().find("usage: medsettle-journal"), std::string::npos) << joined;
  }
}

TEST(JournalToolTime, Rfc3339AndUnixMilliseconds) {
  EXPECT_EQ(*ParseTime("2025-01-01T00:00:00+08:00", "from"), 1'735'660'800'000);
  EXPECT_EQ(*ParseTime("2024-12-31T16:00:00Z", "from"), 1'735'660'800'000);
  EXPECT_EQ(*ParseTime("2024-12-31T16:00:00.25Z", "from"), 1'735'660'800'250);
  EXPECT_EQ(*ParseTime("2024-12-31T16:00:00.123999Z", "from"), 1'735'660'800'123);
  EXPECT_EQ(*ParseTime("1735660800000", "from"), 1'735'660'800'000);
  EXPECT_EQ(*ParseTime("0", "from"), 0);
  EXPECT_EQ(FormatTime(1'735'660'800'123), "2025-01-01T00:00:00.123+08:00");
  EXPECT_EQ(*ParseTime(FormatTime(1'735'660'800'123), "to"), 1'735'660'800'123);
  absl::StatusOr<int64_t> bad = ParseTime("2025-13-01T00:00:00Z", "before");
  EXPECT_EQ(engine::ReasonOf(bad.status()), reason::kJournalInputInvalid);
  EXPECT_EQ(engine::FieldOf(bad.status()), "before");
  EXPECT_FALSE(ParseTime("", "to").ok());
  EXPECT_FALSE(ParseTime("1969-12-31T23:59:59Z", "to").ok());
}

}  // namespace
}  // namespace medsettle::journal_tool
