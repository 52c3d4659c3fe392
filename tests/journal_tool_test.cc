// medsettle-journal end to end, in-process (tools/journal/journal_tool.h)
// against a real redis-server, over journal entries written by real
// commits and reversals (cache::SettlementStore): export returns every
// entry of every tag exactly once in stream-id order with its audit fields
// and amounts, filtered by institution and time window; pages that end
// inside one millisecond lose and repeat nothing; the JSON parses back
// (quotes, backslashes, control characters, UTF-8); --out writes the file
// whole, mode 0600, and refuses a FILE.tmp left behind; trim refuses
// without --yes and a --before less than an hour ago, and otherwise removes
// exactly the older entries; stats counts; bad flags exit 2.
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
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "cache/connection_pool.h"
#include "cache/redis_client.h"
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
  // the order XRANGE returns them, which is the order XADD got them.
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

  // The value of the field `name` of `e` ("" when absent).
  static std::string RawField(const RawEntry& e, const std::string& name) {
    for (const auto& [n, v] : e.fields) {
      if (n == name) return v;
    }
    return "";
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

  std::vector<JsonObject> lines = Export({"--from", "0", "--to", kAllTo});
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
  // Three batches of real commits, added back under chosen ids: the early
  // batch before the window [09:00, 10:00) of 2024-06-10 (+08:00), the middle
  // one in it, the late one after it, with an entry a millisecond from each
  // edge and on the edges themselves.
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
    ASSERT_TRUE(ids.count(RawField(e, "request_id"))) << RawField(e, "request_id");
    Put(e, ids.at(RawField(e, "request_id")));
  }
  ASSERT_FALSE(HasFailure());

  auto request_ids = [&](std::vector<std::string> args) {
    std::set<std::string> out;
    for (const JsonObject& o : Export(std::move(args))) out.insert(Str(o, "request_id"));
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

  // One institution, the whole journal, and within the window.
  std::vector<JsonObject> other =
      Export({"--from", "0", "--to", kAllTo, "--institution", kOtherInstitution});
  std::set<std::string> got;
  for (const JsonObject& o : other) {
    EXPECT_EQ(Str(o, "institution"), kOtherInstitution);
    got.insert(Str(o, "request_id"));
  }
  EXPECT_EQ(got, (std::set<std::string>{"early-2", "middle-2", "late-2"}));
  EXPECT_NE(err_.str().find("exported 3 entries"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("of institution " + kOtherInstitution), std::string::npos);
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
  // for every page size below.
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
      Put(templates.at(b.tag), id, {{"request_id", Cat(b.tag, ":", id)}});
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
  auto exported = [](const std::vector<JsonObject>& lines) {
    std::vector<std::string> out;
    for (const JsonObject& o : lines) {
      out.push_back(Cat(Str(o, "tag"), ":", Str(o, "id")));
      EXPECT_EQ(Str(o, "request_id"), out.back()) << "the entry added under that id";
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
  std::vector<JsonObject> lines = Export({"--from", "0", "--to", kAllTo});
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

  // An export that fails midway (an entry JSON cannot hold) removes its
  // FILE.tmp and leaves the older FILE as it was.
  cache::RedisResult bad = pool_->Command(
      {"XADD", cache::JournalKey("5a"), "1-0", "kind", "SETTLE", "request_id", "bad\xff"});
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_EQ(Run({"export", "--from", "0", "--to", kAllTo, "--out", path}), 1);
  EXPECT_NE(err_.str().find(std::string(reason::kJournalNotExportable)), std::string::npos)
      << err_.str();
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
    ASSERT_TRUE(ids.count(RawField(e, "request_id"))) << RawField(e, "request_id");
    Put(e, ids.at(RawField(e, "request_id")));
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
  for (const JsonObject& o : ParseLines(ReadAll(path))) exported.insert(Str(o, "request_id"));
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
    EXPECT_EQ(e.request_id.rfind("new", 0), 0u) << e.request_id;
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
