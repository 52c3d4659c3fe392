// medsettle-journal end to end, in-process (tools/journal/journal_tool.h)
// against a real redis-server, over journal entries written by real
// commits and reversals (cache::SettlementStore): export returns every
// entry of every tag exactly once in stream-id order with its audit fields
// and amounts, filtered by institution and time window; pages that end
// inside one millisecond lose and repeat nothing; the JSON parses back
// (quotes, backslashes, control characters, UTF-8); --out writes the file
// whole; trim refuses without --yes and a --before less than an hour ago,
// and otherwise removes exactly the older entries; stats counts; bad flags
// exit 2.
#include "tools/journal/journal_tool.h"

#include <algorithm>
#include <chrono>
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
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/settlement_store.h"
#include "cache/snapshot_store.h"
#include "engine/status.h"
#include "engine/text.h"
#include "engine/types.h"
#include "tests/support/engine_fixture.h"
#include "tests/support/redis_server.h"

namespace medsettle::journal_tool {
namespace {

using engine::Cat;
using medsettle::testing::RedisServerTest;

constexpr engine::RegionCode kQuzhou = 330800;
constexpr int32_t kYear = 2024;
constexpr int64_t kNowUnix = 1'718'000'000;  // 2024-06-10
const std::string kInstitution = "H3308020001";
const std::string kOtherInstitution = "P3308020007";
// Persons of the snapshot, of the tags 3f (two), 00, a7 and ff.
const std::string kPerson3f = "3fa1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kOther3f = "3f00000000000000000000000000000000000000000000000000000000000001";
const std::string kPerson00 = "00c1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kPersonA7 = "a7b1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kPersonFf = "ffb1c2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const std::string kCert = std::string(64, 'c');
const std::string kReversalCert = std::string(64, 'e');

// ---- A minimal JSON reader: one flat object of strings and integers ----

using JsonValue = std::variant<std::string, int64_t>;
using JsonObject = std::map<std::string, JsonValue>;

class FlatJson {
 public:
  explicit FlatJson(std::string_view text) : s_(text) {}

  // The object, or nullopt when `text` is not exactly one flat object of
  // strings and integers with unique keys (and proper escapes).
  std::optional<JsonObject> Parse() {
    JsonObject out;
    if (!Eat('{')) return std::nullopt;
    if (Eat('}')) return k_ == s_.size() ? std::optional<JsonObject>(out) : std::nullopt;
    do {
      std::optional<std::string> key = String();
      if (!key.has_value() || !Eat(':') || out.count(*key)) return std::nullopt;
      if (k_ < s_.size() && s_[k_] == '"') {
        std::optional<std::string> v = String();
        if (!v.has_value()) return std::nullopt;
        out[*key] = *v;
      } else {
        std::optional<int64_t> v = Integer();
        if (!v.has_value()) return std::nullopt;
        out[*key] = *v;
      }
    } while (Eat(','));
    if (!Eat('}') || k_ != s_.size()) return std::nullopt;
    return out;
  }

 private:
  bool Eat(char c) {
    if (k_ < s_.size() && s_[k_] == c) {
      ++k_;
      return true;
    }
    return false;
  }
  std::optional<int64_t> Integer() {
    size_t start = k_;
    if (k_ < s_.size() && s_[k_] == '-') ++k_;
    while (k_ < s_.size() && s_[k_] >= '0' && s_[k_] <= '9') ++k_;
    if (k_ == start) return std::nullopt;
    return std::stoll(std::string(s_.substr(start, k_ - start)));
  }
  std::optional<std::string> String() {
    if (!Eat('"')) return std::nullopt;
    std::string out;
    while (k_ < s_.size()) {
      const auto c = static_cast<unsigned char>(s_[k_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt;  // JSON forbids raw control characters
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (k_ >= s_.size()) return std::nullopt;
      const char e = s_[k_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (k_ + 4 > s_.size()) return std::nullopt;
          const int code = std::stoi(std::string(s_.substr(k_, 4)), nullptr, 16);
          k_ += 4;
          if (code >= 0x80) return std::nullopt;  // the tool escapes ASCII only
          out.push_back(static_cast<char>(code));
          break;
        }
        default: return std::nullopt;
      }
    }
    return std::nullopt;
  }

  std::string_view s_;
  size_t k_ = 0;
};

std::string Str(const JsonObject& o, const std::string& key) {
  auto it = o.find(key);
  if (it == o.end() || !std::holds_alternative<std::string>(it->second)) {
    ADD_FAILURE() << "no string " << key;
    return "";
  }
  return std::get<std::string>(it->second);
}

int64_t Int(const JsonObject& o, const std::string& key) {
  auto it = o.find(key);
  if (it == o.end() || !std::holds_alternative<int64_t>(it->second)) {
    ADD_FAILURE() << "no integer " << key;
    return -1;
  }
  return std::get<int64_t>(it->second);
}

std::vector<JsonObject> ParseLines(const std::string& ndjson) {
  std::vector<JsonObject> out;
  std::istringstream in(ndjson);
  std::string line;
  while (std::getline(in, line)) {
    std::optional<JsonObject> o = FlatJson(line).Parse();
    EXPECT_TRUE(o.has_value()) << "not a flat JSON object: " << line;
    if (o.has_value()) out.push_back(*std::move(o));
  }
  return out;
}

// (ms, seq) of a stream id.
std::pair<int64_t, int64_t> IdParts(const std::string& id) {
  const size_t dash = id.find('-');
  return {std::stoll(id.substr(0, dash)), std::stoll(id.substr(dash + 1))};
}

int64_t MsOf(const std::string& id) { return IdParts(id).first; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class JournalToolTest : public RedisServerTest {
 protected:
  void SetUp() override {
    RedisServerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cache::PoolOptions options;
    options.redis = {.host = redis().host(), .port = redis().port(),
                     .connect_timeout_ms = 1000, .command_timeout_ms = 5000};
    options.size = 2;
    options.acquire_timeout_ms = 5000;
    pool_ = std::make_unique<cache::ConnectionPool>(options);
    store_ = std::make_unique<cache::SettlementStore>(*pool_);
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

  // Reads the person's year and commits a settlement of `total_cents` (the
  // fund pays half) with `audit`; the commit as sent.
  cache::SettlementCommit Settle(const std::string& person, const std::string& institution,
                                 const std::string& request_id, int64_t total_cents,
                                 cache::AuditFields audit = {.certificate_fingerprint = kCert,
                                                             .credential_kind = "ID_CARD"}) {
    absl::StatusOr<cache::SettleRead> read =
        store_->ReadForSettle(version_, person, kYear, institution, request_id);
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return {};
    EXPECT_TRUE(read->enrollment.has_value()) << person;
    cache::SettlementCommit c;
    c.person_key = person;
    c.year = kYear;
    c.institution_id = institution;
    c.request_id = request_id;
    c.content_hash = Cat("hash-of-", request_id);
    c.settlement_id = cache::NewSettlementId(person, kNowUnix * 1000);
    c.response = Cat("response-", request_id);
    c.expected_version = read->accumulators.version;
    engine::LedgerTotals& ledger = c.delta.ledgers[0];
    ledger.in_scope_cents = total_cents;
    ledger.fund_paid_cents = total_cents / 2;
    ledger.visits = 1;
    c.after = read->accumulators;
    c.after.AddTotals(c.delta, 1);
    c.amounts.total_cents = total_cents;
    c.amounts.in_scope_cents = total_cents;
    c.amounts.base_fund_cents = total_cents / 2;
    c.amounts.patient_cents = total_cents - total_cents / 2;
    c.settlement_date = medsettle::testing::D("2024-06-10");
    c.visit = 1;
    c.now_unix = kNowUnix;
    c.audit = std::move(audit);
    absl::StatusOr<cache::CommitResult> r = store_->CommitSettlement(c);
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) {
      EXPECT_EQ(r->outcome, cache::CommitOutcome::kCommitted) << request_id;
    }
    return c;
  }

  void Reverse(const cache::SettlementCommit& c, const std::string& reversal_request_id) {
    absl::StatusOr<cache::ReversalResult> r = store_->CommitReversal(
        {.settlement_id = c.settlement_id, .institution_id = c.institution_id,
         .reversal_request_id = reversal_request_id, .response = "reversed",
         .now_unix = kNowUnix + 60, .certificate_fingerprint = kReversalCert});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->replayed);
  }

  // Every entry of every tag, read whole with ReadJournal, as (tag, entry).
  std::vector<std::pair<std::string, cache::JournalEntry>> AllEntries() {
    std::vector<std::pair<std::string, cache::JournalEntry>> out;
    for (int t = 0; t < 256; ++t) {
      static constexpr char kHex[] = "0123456789abcdef";
      const std::string tag = {kHex[t >> 4], kHex[t & 15]};
      absl::StatusOr<std::vector<cache::JournalEntry>> j =
          store_->ReadJournal(tag, 0, INT64_MAX);
      EXPECT_TRUE(j.ok()) << j.status();
      if (!j.ok()) continue;
      for (cache::JournalEntry& e : *j) out.emplace_back(tag, std::move(e));
    }
    return out;
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
  std::vector<JsonObject> Export(std::vector<std::string> args) {
    args.insert(args.begin(), "export");
    const int code = Run(args);
    EXPECT_EQ(code, 0) << err_.str();
    return ParseLines(out_.str());
  }

  std::string version_;
  std::string address_;
  std::string dir_;
  std::unique_ptr<cache::ConnectionPool> pool_;
  std::unique_ptr<cache::SettlementStore> store_;
  std::ostringstream out_, err_;
};

// A window that holds every entry written so far: [0, 1 minute from now).
std::string AllTo() {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return std::to_string(now + 60'000);
}

TEST_F(JournalToolTest, ExportHasEveryEntryOnceInStreamIdOrderWithItsAuditFields) {
  std::vector<cache::SettlementCommit> commits;
  const std::vector<std::string> persons = {kPerson3f, kPerson00, kPersonA7, kPersonFf, kOther3f};
  for (int i = 0; i < 15; ++i) {
    cache::AuditFields audit{.certificate_fingerprint = kCert, .credential_kind = "ID_CARD"};
    if (i % 3 == 1) audit = {.certificate_fingerprint = kCert, .credential_kind = "EC_TOKEN",
                             .presenter_key = kPersonA7};
    commits.push_back(Settle(persons[static_cast<size_t>(i) % persons.size()],
                             i % 2 == 0 ? kInstitution : kOtherInstitution, Cat("r", i),
                             1000 + i, audit));
  }
  Reverse(commits[4], "undo-4");
  Reverse(commits[7], "undo-7");
  ASSERT_FALSE(HasFailure());

  std::vector<JsonObject> lines = Export({"--from", "0", "--to", AllTo()});
  const auto all = AllEntries();
  ASSERT_EQ(lines.size(), 17u);
  ASSERT_EQ(lines.size(), all.size());

  // Stream-id order across the tags, equal ids by tag; each entry once.
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t k = 0; k < lines.size(); ++k) {
    const std::string id = Str(lines[k], "id");
    const std::string tag = Str(lines[k], "tag");
    EXPECT_TRUE(seen.insert({tag, id}).second) << "twice: " << tag << " " << id;
    if (k > 0) {
      const auto before = std::make_tuple(IdParts(Str(lines[k - 1], "id")),
                                          Str(lines[k - 1], "tag"));
      EXPECT_LT(before, std::make_tuple(IdParts(id), tag)) << "line " << k;
    }
  }
  for (const auto& [tag, e] : all) EXPECT_TRUE(seen.count({tag, e.stream_id})) << e.stream_id;

  // Every field, against what was committed.
  std::map<std::string, const JsonObject*> settles, reverses;
  for (const JsonObject& o : lines) {
    (Str(o, "kind") == "SETTLE" ? settles : reverses)[Str(o, "settlement_id")] = &o;
  }
  ASSERT_EQ(settles.size(), 15u);
  ASSERT_EQ(reverses.size(), 2u);
  for (size_t i = 0; i < commits.size(); ++i) {
    const cache::SettlementCommit& c = commits[i];
    ASSERT_TRUE(settles.count(c.settlement_id)) << c.settlement_id;
    const JsonObject& o = *settles[c.settlement_id];
    EXPECT_EQ(Str(o, "tag"), c.person_key.substr(0, 2));
    EXPECT_EQ(Str(o, "person_key"), c.person_key);
    EXPECT_EQ(Int(o, "year"), kYear);
    EXPECT_EQ(Str(o, "institution"), c.institution_id);
    EXPECT_EQ(Str(o, "request_id"), c.request_id);
    EXPECT_EQ(Str(o, "date"), "2024-06-10");
    EXPECT_EQ(Int(o, "at"), kNowUnix);
    EXPECT_EQ(Str(o, "cert"), kCert);
    EXPECT_EQ(Str(o, "credential"), c.audit.credential_kind);
    EXPECT_EQ(Str(o, "presenter"), c.audit.presenter_key);
    EXPECT_EQ(Str(o, "outcome"), "SETTLED");
    EXPECT_EQ(Int(o, "a.total"), c.amounts.total_cents);
    EXPECT_EQ(Int(o, "a.base_fund"), c.amounts.base_fund_cents);
    EXPECT_EQ(Int(o, "a.patient"), c.amounts.patient_cents);
    EXPECT_EQ(Int(o, "a.critical_illness"), 0) << "a zero amount is written as 0";
    EXPECT_EQ(Int(o, "d.go.in"), c.delta.ledgers[0].in_scope_cents);
    EXPECT_EQ(Int(o, "d.go.fund"), c.delta.ledgers[0].fund_paid_cents);
    EXPECT_EQ(Int(o, "d.go.visits"), 1);
    EXPECT_EQ(Int(o, "d.ci.paid"), 0);
    // Every line has every key: 14 fields, 10 amounts, every total.
    EXPECT_EQ(o.size(), 14 + cache::AmountFieldNames().size() +
                            cache::AccumulatorFieldNames().size());
  }
  for (size_t i : {size_t{4}, size_t{7}}) {
    const cache::SettlementCommit& c = commits[i];
    ASSERT_TRUE(reverses.count(c.settlement_id));
    const JsonObject& o = *reverses[c.settlement_id];
    EXPECT_EQ(Str(o, "request_id"), Cat("undo-", i));
    EXPECT_EQ(Str(o, "cert"), kReversalCert) << "the reversing call's certificate";
    EXPECT_EQ(Str(o, "credential"), c.audit.credential_kind) << "the settlement's";
    EXPECT_EQ(Str(o, "presenter"), c.audit.presenter_key);
    EXPECT_EQ(Str(o, "outcome"), "REVERSED");
    EXPECT_EQ(Int(o, "at"), kNowUnix + 60);
    EXPECT_EQ(Int(o, "a.total"), c.amounts.total_cents) << "positive: subtract it";
    EXPECT_EQ(Int(o, "d.go.in"), c.delta.ledgers[0].in_scope_cents);
  }

  // The summary (stderr without --out).
  int64_t settled = 0;
  for (const cache::SettlementCommit& c : commits) settled += c.amounts.total_cents;
  const int64_t reversed = commits[4].amounts.total_cents + commits[7].amounts.total_cents;
  const std::string summary = err_.str();
  EXPECT_NE(summary.find("exported 17 entries"), std::string::npos) << summary;
  EXPECT_NE(summary.find(Cat("SETTLE: 15 entries, a.total ", settled, " 分")), std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("REVERSE: 2 entries, a.total ", reversed, " 分")),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("net a.total: ", settled - reversed, " 分")), std::string::npos);
  EXPECT_NE(summary.find(Cat("first: ", Str(lines.front(), "id"), " (tag ",
                             Str(lines.front(), "tag"))),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find(Cat("last: ", Str(lines.back(), "id"))), std::string::npos) << summary;
}

TEST_F(JournalToolTest, ExportFiltersByInstitutionAndTimeWindow) {
  // Three batches a few milliseconds apart; the window is the middle one.
  auto batch = [&](const std::string& prefix) {
    std::vector<cache::SettlementCommit> out;
    out.push_back(Settle(kPerson3f, kInstitution, Cat(prefix, "-1"), 100));
    out.push_back(Settle(kPerson00, kOtherInstitution, Cat(prefix, "-2"), 200));
    out.push_back(Settle(kPersonFf, kInstitution, Cat(prefix, "-3"), 300));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return out;
  };
  batch("early");
  std::vector<cache::SettlementCommit> middle = batch("middle");
  std::vector<cache::SettlementCommit> late = batch("late");
  ASSERT_FALSE(HasFailure());
  int64_t from = INT64_MAX, to = INT64_MAX;
  for (const auto& [tag, e] : AllEntries()) {
    if (e.request_id.rfind("middle", 0) == 0) from = std::min(from, MsOf(e.stream_id));
    if (e.request_id.rfind("late", 0) == 0) to = std::min(to, MsOf(e.stream_id));
  }
  ASSERT_LT(from, to);

  std::set<std::string> want, got;
  for (const auto& [tag, e] : AllEntries()) {
    if (MsOf(e.stream_id) >= from && MsOf(e.stream_id) < to) want.insert(e.request_id);
  }
  for (const JsonObject& o :
       Export({"--from", std::to_string(from), "--to", std::to_string(to)})) {
    got.insert(Str(o, "request_id"));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(got, (std::set<std::string>{"middle-1", "middle-2", "middle-3"}));

  // The same window as RFC 3339 (the tool's own rendering, +08:00, ms).
  got.clear();
  for (const JsonObject& o : Export({"--from", FormatTime(from), "--to", FormatTime(to)})) {
    got.insert(Str(o, "request_id"));
  }
  EXPECT_EQ(got, want);

  // One institution, the whole journal.
  got.clear();
  for (const JsonObject& o : Export({"--from", "0", "--to", AllTo(), "--institution",
                                     kOtherInstitution})) {
    EXPECT_EQ(Str(o, "institution"), kOtherInstitution);
    got.insert(Str(o, "request_id"));
  }
  EXPECT_EQ(got, (std::set<std::string>{"early-2", "middle-2", "late-2"}));
  EXPECT_NE(err_.str().find("exported 3 entries"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("of institution " + kOtherInstitution), std::string::npos);

  // An empty window exports nothing and says so.
  EXPECT_TRUE(Export({"--from", "1", "--to", "2"}).empty());
  EXPECT_NE(err_.str().find("exported 0 entries"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("first: (none)"), std::string::npos) << err_.str();
}

TEST_F(JournalToolTest, PagesEndingInsideOneMillisecondLoseAndRepeatNothing) {
  // Commit into one tag until one millisecond holds at least two entries
  // (ids <ms>-0, <ms>-1): a commit is two loopback round trips, so that
  // comes within a few commits. Plus entries in other tags.
  bool shared = false;
  int commits = 0;
  for (; commits < 2000 && !shared; ++commits) {
    Settle(commits % 2 == 0 ? kPerson3f : kOther3f, kInstitution, Cat("same-ms-", commits), 10);
    ASSERT_FALSE(HasFailure());
    if (commits >= 20) {
      absl::StatusOr<std::vector<cache::JournalEntry>> j = store_->ReadJournal("3f", 0, INT64_MAX);
      ASSERT_TRUE(j.ok()) << j.status();
      for (const cache::JournalEntry& e : *j) shared |= IdParts(e.stream_id).second > 0;
    }
  }
  ASSERT_TRUE(shared) << "no two of " << commits << " commits shared a millisecond";
  for (int i = 0; i < 5; ++i) {
    Settle(kPerson00, kInstitution, Cat("t00-", i), 10);
    Settle(kPersonA7, kInstitution, Cat("ta7-", i), 10);
  }
  ASSERT_FALSE(HasFailure());

  // Page 1 puts a page boundary between every two entries of a tag, so
  // inside every shared millisecond; the pages of 3 and 7 elsewhere.
  const std::string to = AllTo();
  ASSERT_EQ(Run({"export", "--from", "0", "--to", to, "--page", "1000"}), 0) << err_.str();
  const std::string whole = out_.str();
  std::vector<JsonObject> lines = ParseLines(whole);
  ASSERT_EQ(lines.size(), static_cast<size_t>(commits + 10));
  std::set<std::string> ids;
  for (const JsonObject& o : lines) ids.insert(Cat(Str(o, "tag"), Str(o, "id")));
  EXPECT_EQ(ids.size(), lines.size());
  for (const char* page : {"1", "2", "3", "7"}) {
    ASSERT_EQ(Run({"export", "--from", "0", "--to", to, "--page", page}), 0) << err_.str();
    EXPECT_EQ(out_.str(), whole) << "--page " << page;
  }

  // The library's paged read of one tag, after an id inside a millisecond.
  absl::StatusOr<std::vector<cache::JournalEntry>> tag3f = store_->ReadJournal("3f", 0, INT64_MAX);
  ASSERT_TRUE(tag3f.ok()) << tag3f.status();
  std::vector<std::string> paged;
  absl::StatusOr<std::vector<cache::JournalEntry>> page =
      store_->ReadJournal("3f", 0, INT64_MAX, 2);
  for (size_t pages = 0; page.ok() && !page->empty() && pages <= tag3f->size(); ++pages) {
    for (const cache::JournalEntry& e : *page) paged.push_back(e.stream_id);
    page = store_->ReadJournalAfter("3f", paged.back(), INT64_MAX, 2);
  }
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> whole3f;
  for (const cache::JournalEntry& e : *tag3f) whole3f.push_back(e.stream_id);
  EXPECT_EQ(paged, whole3f);
}

TEST_F(JournalToolTest, JsonEscapesQuotesBackslashesAndControlCharacters) {
  const std::string odd = "r\"q\\1/x";
  Settle(kPerson3f, kInstitution, odd, 500);
  Settle(kPerson00, kInstitution, "tab\there\x01", 600,
         {.certificate_fingerprint = "", .credential_kind = "INSURANCE_CARD"});
  ASSERT_FALSE(HasFailure());
  std::vector<JsonObject> lines = Export({"--from", "0", "--to", AllTo()});
  ASSERT_EQ(lines.size(), 2u);
  std::set<std::string> request_ids;
  for (const JsonObject& o : lines) request_ids.insert(Str(o, "request_id"));
  EXPECT_EQ(request_ids, (std::set<std::string>{odd, "tab\there\x01"}));
  EXPECT_NE(out_.str().find(R"("request_id":"r\"q\\1/x")"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find(R"("request_id":"tab\there\u0001")"), std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find(R"("cert":"")"), std::string::npos) << "a dev call's empty cert";

  // UTF-8 passes through; bytes that are not UTF-8 are refused, not altered.
  EXPECT_EQ(*JsonString("医保\x7f"), "\"医保\\u007f\"");
  for (std::string_view bad : {std::string_view("\xff"), std::string_view("a\xe5\x8c"),
                               std::string_view("\xc0\xaf"), std::string_view("\xed\xa0\x80")}) {
    absl::StatusOr<std::string> s = JsonString(bad);
    EXPECT_EQ(engine::ReasonOf(s.status()), reason::kJournalNotExportable) << bad;
  }
  cache::JournalEntry e;
  e.stream_id = "1-0";
  e.request_id = "bad\xff";
  absl::StatusOr<std::string> line = EntryJson("3f", e);
  EXPECT_EQ(engine::FieldOf(line.status()), "request_id");
  EXPECT_NE(std::string(line.status().message()).find("1-0"), std::string::npos);
}

TEST_F(JournalToolTest, ExportToAFileRenamesItIntoPlaceAndPrintsTheSummary) {
  Settle(kPerson3f, kInstitution, "f1", 700);
  Settle(kPersonA7, kOtherInstitution, "f2", 800);
  ASSERT_FALSE(HasFailure());
  const std::string to = AllTo();
  ASSERT_EQ(Run({"export", "--from", "0", "--to", to}), 0) << err_.str();
  const std::string to_stdout = out_.str();

  const std::string path = dir_ + "/journal.ndjson";
  ASSERT_EQ(Run({"export", "--from", "0", "--to", to, "--out", path}), 0) << err_.str();
  EXPECT_EQ(ReadAll(path), to_stdout);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_NE(out_.str().find("exported 2 entries"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("to " + path), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("SETTLE: 2 entries, a.total 1500 分"), std::string::npos);
  // The window ends a minute from now: still open, and the tool says so.
  EXPECT_NE(err_.str().find("warning: --to"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("is in the future"), std::string::npos) << err_.str();
  ASSERT_EQ(Run({"export", "--from", "0", "--to", "1", "--out", dir_ + "/empty.ndjson"}), 0);
  EXPECT_EQ(err_.str(), "") << "a window in the past: no warning";
  EXPECT_EQ(ReadAll(dir_ + "/empty.ndjson"), "");

  // A directory that does not exist: refused, nothing left behind.
  const std::string nowhere = dir_ + "/missing/journal.ndjson";
  EXPECT_EQ(Run({"export", "--from", "0", "--to", to, "--out", nowhere}), 1);
  EXPECT_NE(err_.str().find("--out"), std::string::npos) << err_.str();
  EXPECT_FALSE(std::filesystem::exists(nowhere + ".tmp"));
}

TEST_F(JournalToolTest, TrimRefusesWithoutYesAndTooRecentTimesThenCutsExactly) {
  Settle(kPerson3f, kInstitution, "old-1", 100);
  Settle(kPerson00, kInstitution, "old-2", 100);
  cache::SettlementCommit reversed = Settle(kPersonFf, kInstitution, "old-3", 100);
  Reverse(reversed, "old-undo");
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  Settle(kPersonA7, kInstitution, "new-1", 100);
  Settle(kPerson3f, kInstitution, "new-2", 100);
  ASSERT_FALSE(HasFailure());
  const auto all = AllEntries();
  ASSERT_EQ(all.size(), 6u);
  int64_t cut = INT64_MAX;
  for (const auto& [tag, e] : all) {
    if (e.request_id.rfind("new", 0) == 0) cut = std::min(cut, MsOf(e.stream_id));
  }
  int64_t older = 0;
  for (const auto& [tag, e] : all) older += MsOf(e.stream_id) < cut ? 1 : 0;
  ASSERT_EQ(older, 4);
  const std::string before = std::to_string(cut);

  // No --yes: a usage error, nothing removed.
  EXPECT_EQ(Run({"trim", "--before", before}), 2);
  EXPECT_NE(err_.str().find("--yes"), std::string::npos) << err_.str();
  EXPECT_EQ(AllEntries().size(), 6u);

  // Less than an hour before now (by Redis's clock, and by a clock set
  // just short of the hour): refused, nothing removed.
  EXPECT_EQ(Run({"trim", "--before", before, "--yes"}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kTrimTooRecent)), std::string::npos)
      << err_.str();
  EXPECT_NE(err_.str().find("now minus 1 hour"), std::string::npos) << err_.str();
  EXPECT_EQ(Run({"trim", "--before", before, "--yes"}, {.now_ms = cut + kTrimMinAgeMs - 1}), 1);
  EXPECT_EQ(AllEntries().size(), 6u);

  // Exported, then trimmed at the same time an hour later: the trim removes
  // exactly what the export wrote.
  const std::string path = dir_ + "/before-cut.ndjson";
  ASSERT_EQ(Run({"export", "--from", "0", "--to", before, "--out", path}), 0) << err_.str();
  EXPECT_EQ(ParseLines(ReadAll(path)).size(), 4u);
  ASSERT_EQ(Run({"trim", "--before", FormatTime(cut), "--yes"},
                {.now_ms = cut + kTrimMinAgeMs}),
            0)
      << err_.str();
  EXPECT_NE(out_.str().find("removed 4 entries"), std::string::npos) << out_.str();
  const auto left = AllEntries();
  ASSERT_EQ(left.size(), 2u);
  for (const auto& [tag, e] : left) {
    EXPECT_GE(MsOf(e.stream_id), cut);
    EXPECT_EQ(e.request_id.rfind("new", 0), 0u) << e.request_id;
  }
  ASSERT_EQ(Run({"trim", "--before", before, "--yes"}, {.now_ms = cut + kTrimMinAgeMs}), 0);
  EXPECT_NE(out_.str().find("removed 0 entries"), std::string::npos) << "again: nothing more";
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
