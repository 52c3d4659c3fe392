#include "tools/journal/journal_tool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <compare>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <queue>
#include <streambuf>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cache/redis_factory.h"
#include "engine/date.h"
#include "engine/status.h"
#include "engine/text.h"
#include "google/protobuf/util/json_util.h"

namespace medsettle::journal_tool {
namespace {

using engine::Cat;

constexpr int kTagCount = 256;
// 2200-01-01T00:00:00Z: engine::FormatRfc3339 and ParseRfc3339 cover the
// years 1900..2199, and no journal entry is older than 1970.
constexpr int64_t kMaxTimeMs = 7'258'118'400'000;
// China Standard Time, the bureau's clock, for what the tool prints.
constexpr int kShownOffsetMinutes = 480;

absl::Status BadFlag(std::string_view flag, std::string_view why) {
  return engine::InvalidField(reason::kJournalInputInvalid, flag, Cat("--", flag, " ", why));
}

std::string Message(const absl::Status& s) {
  return Cat(absl::StatusCodeToString(s.code()), " ", engine::ReasonOf(s), ": ",
             std::string_view(s.message().data(), s.message().size()));
}

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

std::string TagText(int tag) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[(tag >> 4) & 15], kHex[tag & 15]};
}

// A stream id "<ms>-<seq>" as numbers, for ordering ids of different tags
// (as text "9-0" would sort after "10-0").
struct StreamId {
  uint64_t ms = 0;
  uint64_t seq = 0;
  friend auto operator<=>(const StreamId&, const StreamId&) = default;
};

std::optional<StreamId> ParseStreamId(std::string_view id) {
  const size_t dash = id.find('-');
  StreamId out;
  if (dash == std::string_view::npos || !ParseNumber(id.substr(0, dash), &out.ms) ||
      !ParseNumber(id.substr(dash + 1), &out.seq)) {
    return std::nullopt;
  }
  return out;
}

// Appends the code point of the UTF-8 sequence at s[k..] and returns its
// length; 0 when the bytes there are not UTF-8 (overlong forms, surrogates
// and values above U+10FFFF included).
size_t Utf8Length(std::string_view s, size_t k) {
  const auto byte = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b = byte(k);
  size_t n = 0;
  uint32_t cp = 0;
  if (b >= 0xc2 && b <= 0xdf) {
    n = 2;
    cp = b & 0x1fu;
  } else if (b >= 0xe0 && b <= 0xef) {
    n = 3;
    cp = b & 0x0fu;
  } else if (b >= 0xf0 && b <= 0xf4) {
    n = 4;
    cp = b & 0x07u;
  } else {
    return 0;
  }
  if (k + n > s.size()) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((byte(k + i) & 0xc0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte(k + i) & 0x3fu);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
    return 0;
  }
  return n;
}

// The export's stop at an entry that does not decode: the tag, the stream
// id and what the store found (its code, reason and message).
absl::Status EntryNotDecoded(std::string_view tag, const cache::JournalEntry& e) {
  return engine::Refusal(
      absl::StatusCode::kInternal, reason::kJournalEntryInvalid, "",
      Cat("journal entry ", e.stream_id, " of tag ", tag, " (", cache::JournalKey(tag),
          ") does not decode: ", Message(e.status),
          "; the export stops at it (an entry is never skipped): find out what wrote it"));
}

// What the line says of an entry besides its record.
struct EntryHead {
  std::string_view settlement_id;
  std::string_view institution;
  std::string_view date;
  int64_t at_ms = 0;
  int64_t total_cents = 0;  // the record's amounts.total_cents
};
EntryHead HeadOf(const cache::JournalEntry& e) {
  if (e.kind == cache::JournalKind::kSettle) {
    const v1::LedgerRecord& r = e.settlement;
    return {.settlement_id = r.settlement_id(),
            .institution = r.institution_id(),
            .date = r.settlement_date(),
            .at_ms = r.settled_at_unix_ms(),
            .total_cents = r.response().amounts().total_cents()};
  }
  const v1::LedgerReversal& r = e.reversal;
  return {.settlement_id = r.settlement_id(),
          .institution = r.institution_id(),
          .date = r.settlement_date(),
          .at_ms = r.reversed_at_unix_ms(),
          .total_cents = r.amounts().total_cents()};
}

// Where `export --out FILE` writes: FILE.tmp, created new with mode 0600
// (the export holds whole records: person keys, certificate fingerprints,
// bills), written through its descriptor, fsynced and renamed to FILE once
// complete (a reader never sees half an export under FILE's name). An existing
// FILE.tmp is refused, never reused or removed: it is left by an export
// that was killed (no destructor runs on SIGKILL or Ctrl-C) or belongs to
// one still running. The destructor removes FILE.tmp only when this object
// created it and did not rename it (an export that failed with an error).
class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)), tmp_(Cat(path_, ".tmp")) {}
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (created_ && !committed_) ::unlink(tmp_.c_str());
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  absl::Status Open() {
    // O_EXCL: never an existing file, nor a symbolic link planted there.
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      const int error = errno;
      if (error == EEXIST) {
        return engine::Refusal(
            absl::StatusCode::kFailedPrecondition, reason::kJournalExportTmpExists, "out",
            Cat(tmp_, " already exists: an export to ", path_,
                " was killed before it finished, or one is still running; make sure none is "
                "running, remove ",
                tmp_, " and export again (", path_, " itself was not touched)"));
      }
      return BadFlag("out", Cat("cannot be written: ", tmp_, ": ", ErrnoText(error)));
    }
    created_ = true;
    // The mode open() gives is 0600 less the umask; make it exactly 0600.
    if (::fchmod(fd_, 0600) != 0) {
      return absl::InternalError(Cat("chmod 0600 of ", tmp_, " failed: ", ErrnoText(errno)));
    }
    buffer_.Attach(fd_);
    return absl::OkStatus();
  }
  std::ostream& stream() { return stream_; }

  // Flushes, fsyncs, closes and renames the file into place, then fsyncs
  // its directory: the export is on disk before anyone trims what it holds.
  absl::Status Commit() {
    stream_.flush();
    if (!stream_ || buffer_.error() != 0) {
      return absl::InternalError(Cat("writing ", tmp_, " failed: ", ErrnoText(buffer_.error())));
    }
    if (::fsync(fd_) != 0) {
      return absl::InternalError(Cat("fsync of ", tmp_, " failed: ", ErrnoText(errno)));
    }
    if (::close(std::exchange(fd_, -1)) != 0) {
      return absl::InternalError(Cat("closing ", tmp_, " failed: ", ErrnoText(errno)));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      return absl::InternalError(
          Cat("renaming ", tmp_, " to ", path_, " failed: ", ErrnoText(errno)));
    }
    committed_ = true;
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    if (!SyncDirectory(dir)) {
      return absl::InternalError(Cat("fsync of the directory ", dir, " failed"));
    }
    return absl::OkStatus();
  }

 private:
  // An output buffer over a file descriptor (write(2), EINTR retried).
  class FdBuffer final : public std::streambuf {
   public:
    void Attach(int fd) {
      fd_ = fd;
      setp(data_.data(), data_.data() + data_.size());
    }
    int error() const { return error_; }  // errno of the failed write, 0 if none

   protected:
    int_type overflow(int_type c) override {
      if (fd_ < 0 || Drain() != 0) return traits_type::eof();
      if (!traits_type::eq_int_type(c, traits_type::eof())) {
        *pptr() = traits_type::to_char_type(c);
        pbump(1);
      }
      return traits_type::not_eof(c);
    }
    int sync() override { return fd_ < 0 ? -1 : Drain(); }

   private:
    int Drain() {
      const char* p = pbase();
      while (p < pptr()) {
        const ssize_t n = ::write(fd_, p, static_cast<size_t>(pptr() - p));
        if (n < 0) {
          if (errno == EINTR) continue;
          error_ = errno;
          return -1;
        }
        p += n;
      }
      setp(data_.data(), data_.data() + data_.size());
      return 0;
    }

    int fd_ = -1;
    int error_ = 0;
    std::array<char, 1 << 16> data_{};
  };

  static std::string ErrnoText(int error) {
    return std::error_code(error, std::generic_category()).message();
  }
  static bool SyncDirectory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
  }

  const std::string path_;
  const std::string tmp_;
  int fd_ = -1;
  bool created_ = false;    // this object created tmp_
  bool committed_ = false;  // and renamed it to path_
  FdBuffer buffer_;
  std::ostream stream_{&buffer_};
};

// ---- Command line ----

struct Flags {
  std::string redis = "127.0.0.1:6379";
  std::string redis_mode = "standalone";
  std::optional<std::string> from, to, before, institution, out, page;
  bool yes = false;
};

constexpr std::string_view kUsage =
    "usage: medsettle-journal COMMAND [flags]   (tools/journal/README.md)\n"
    "  export --from TIME --to TIME [--institution ID] [--out FILE] [--page N]"
    " [--redis HOST:PORT]\n"
    "  trim --before TIME --yes [--redis HOST:PORT]\n"
    "  stats [--redis HOST:PORT]\n"
    "A Redis Cluster: --redis-mode cluster --redis HOST:PORT,HOST:PORT,... (any of its nodes)\n"
    "TIME: RFC 3339 with an offset (2025-01-01T00:00:00+08:00) or Unix milliseconds;\n"
    "export reads [--from, --to); trim removes the entries before --before.\n";

// The flags of `command`: each given once, only those it takes.
absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  const std::string& command = args[0];
  Flags flags;
  std::vector<std::string> seen;
  for (size_t k = 1; k < args.size(); ++k) {
    const std::string& arg = args[k];
    if (arg.rfind("--", 0) != 0) {
      return engine::InvalidField(reason::kJournalInputInvalid, "",
                                  Cat(command, " takes no argument ", arg));
    }
    const std::string name = arg.substr(2);
    for (const std::string& s : seen) {
      if (s == name) return BadFlag(name, "is given twice");
    }
    seen.push_back(name);
    if (name == "yes" && command == "trim") {
      flags.yes = true;
      continue;
    }
    std::optional<std::string>* slot = nullptr;
    if (name == "from" && command == "export") slot = &flags.from;
    else if (name == "to" && command == "export") slot = &flags.to;
    else if (name == "institution" && command == "export") slot = &flags.institution;
    else if (name == "out" && command == "export") slot = &flags.out;
    else if (name == "page" && command == "export") slot = &flags.page;
    else if (name == "before" && command == "trim") slot = &flags.before;
    else if (name != "redis" && name != "redis-mode") {
      return BadFlag(name, Cat("is not a flag of ", command));
    }
    if (k + 1 >= args.size()) return BadFlag(name, "needs a value");
    const std::string& value = args[++k];
    if (slot != nullptr) {
      *slot = value;
    } else if (name == "redis") {
      flags.redis = value;
    } else {
      flags.redis_mode = value;
    }
  }
  return flags;
}

absl::StatusOr<std::unique_ptr<cache::RedisClients>> Connect(const Flags& flags) {
  if (flags.redis_mode != "standalone" && flags.redis_mode != "cluster") {
    return BadFlag("redis-mode", Cat("must be standalone or cluster, got ", flags.redis_mode));
  }
  const bool cluster = flags.redis_mode == "cluster";
  absl::StatusOr<std::vector<cache::NodeAddress>> nodes = cache::ParseNodeList(flags.redis);
  if (!nodes.ok() || (!cluster && nodes->size() != 1)) {
    return BadFlag("redis", Cat("must be HOST:PORT", cluster ? "[,HOST:PORT…]" : "", ", got ",
                                flags.redis));
  }
  cache::RedisTarget target;
  target.cluster = cluster;
  target.nodes = *std::move(nodes);
  target.connect_timeout_ms = 2000;
  target.command_timeout_ms = 30000;  // an XTRIM of a long stream
  target.pool_size = 1;
  target.acquire_timeout_ms = 1000;
  target.io_threads = 0;  // blocking calls only
  return cache::RedisClients::Open(std::move(target));
}

// Redis's clock in Unix ms (TIME): the clock that made the stream ids.
absl::StatusOr<int64_t> RedisNowMs(cache::RedisClient& redis) {
  // Any node's clock: a cluster's nodes share the hosts' NTP time.
  cache::RedisResult r = redis.NodeCommand(0, {"TIME"});
  if (!r.ok()) return r.status();
  int64_t seconds = 0;
  int64_t micros = 0;
  if (r->elements.size() != 2 || !ParseNumber(std::string_view(r->elements[0].str), &seconds) ||
      !ParseNumber(std::string_view(r->elements[1].str), &micros)) {
    return absl::InternalError("unexpected Redis reply to TIME");
  }
  return seconds * 1000 + micros / 1000;
}

std::string IdAndTime(std::string_view id, std::string_view tag) {
  if (id.empty()) return "(none)";
  std::optional<StreamId> parsed = ParseStreamId(id);
  std::string when;
  if (parsed.has_value() && parsed->ms < static_cast<uint64_t>(kMaxTimeMs)) {
    when = Cat(", ", FormatTime(static_cast<int64_t>(parsed->ms)));
  }
  return Cat(id, " (tag ", tag, when, ")");
}

int RunExport(const Flags& flags, std::ostream& out, std::ostream& err) {
  auto usage = [&err](const absl::Status& s) {
    err << "medsettle-journal: " << Message(s) << "\n" << kUsage;
    return 2;
  };
  if (!flags.from.has_value() || !flags.to.has_value()) {
    return usage(BadFlag(flags.from ? "to" : "from", "is required"));
  }
  ExportOptions options;
  absl::StatusOr<int64_t> from = ParseTime(*flags.from, "from");
  if (!from.ok()) return usage(from.status());
  absl::StatusOr<int64_t> to = ParseTime(*flags.to, "to");
  if (!to.ok()) return usage(to.status());
  options.from_ms = *from;
  options.to_ms = *to;
  if (options.from_ms >= options.to_ms) {
    return usage(BadFlag("to", "must be after --from (the window is [--from, --to))"));
  }
  if (flags.page.has_value() &&
      (!ParseNumber(std::string_view(*flags.page), &options.page_size) || options.page_size < 1 ||
       options.page_size > kMaxPageSize)) {
    return usage(BadFlag("page", Cat("must be 1..", kMaxPageSize)));
  }
  if (flags.institution.has_value()) {
    if (flags.institution->empty()) return usage(BadFlag("institution", "is empty"));
    options.institution = *flags.institution;
  }
  if (flags.out.has_value() && flags.out->empty()) return usage(BadFlag("out", "is empty"));
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> pool = Connect(flags);
  if (!pool.ok()) return usage(pool.status());
  auto fail = [&err](const absl::Status& s) {
    err << "medsettle-journal: " << Message(s) << "\n";
    return 1;
  };

  // A window still open: entries appended after the export with ids
  // before --to will be missing from it (and a trim at --to would later
  // remove them unexported).
  absl::StatusOr<int64_t> now_ms = RedisNowMs((*pool)->blocking());
  if (!now_ms.ok()) return fail(now_ms.status());
  if (options.to_ms > *now_ms) {
    err << "medsettle-journal: warning: --to " << FormatTime(options.to_ms)
        << " is in the future (Redis's clock: " << FormatTime(*now_ms)
        << "): entries appended from now on with ids before it are not in this export;"
           " export again before trimming at --to\n";
  }

  cache::RedisSettlementStore store((*pool)->blocking());
  absl::StatusOr<ExportSummary> summary;
  std::unique_ptr<OutputFile> file;
  if (flags.out.has_value()) {
    file = std::make_unique<OutputFile>(*flags.out);
    if (absl::Status s = file->Open(); !s.ok()) return fail(s);
    summary = Export(store, options, file->stream());
    if (!summary.ok()) return fail(summary.status());
    if (absl::Status s = file->Commit(); !s.ok()) return fail(s);
  } else {
    summary = Export(store, options, out);
    if (!summary.ok()) return fail(summary.status());
    out.flush();
    if (!out) return fail(absl::InternalError("writing the export to standard output failed"));
  }

  std::ostream& report = file ? out : err;
  report << "exported " << summary->entries << " entries with stream ids in ["
         << FormatTime(options.from_ms) << ", " << FormatTime(options.to_ms) << ")";
  if (!options.institution.empty()) report << " of institution " << options.institution;
  if (file) report << " to " << *flags.out;
  report << " (" << summary->reads << " reads)\n"
         << "first: " << IdAndTime(summary->first_id, summary->first_tag) << "\n"
         << "last: " << IdAndTime(summary->last_id, summary->last_tag) << "\n"
         << "SETTLE: " << summary->settle_entries << " entries, a.total "
         << summary->settled_total_cents << " 分\n"
         << "REVERSE: " << summary->reverse_entries << " entries, a.total "
         << summary->reversed_total_cents << " 分\n"
         << "net a.total: " << summary->settled_total_cents - summary->reversed_total_cents
         << " 分\n";
  return 0;
}

int RunTrim(const Flags& flags, std::ostream& out, std::ostream& err, const RunOptions& run) {
  auto usage = [&err](const absl::Status& s) {
    err << "medsettle-journal: " << Message(s) << "\n" << kUsage;
    return 2;
  };
  if (!flags.before.has_value()) return usage(BadFlag("before", "is required"));
  absl::StatusOr<int64_t> before = ParseTime(*flags.before, "before");
  if (!before.ok()) return usage(before.status());
  if (!flags.yes) {
    return usage(BadFlag("yes", "is required: trim deletes journal entries for good; export "
                                "them first (export --to the same time), then add --yes"));
  }
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> pool = Connect(flags);
  if (!pool.ok()) return usage(pool.status());
  auto fail = [&err](const absl::Status& s) {
    err << "medsettle-journal: " << Message(s) << "\n";
    return 1;
  };
  int64_t now_ms = run.now_ms;
  if (now_ms <= 0) {
    absl::StatusOr<int64_t> redis_now = RedisNowMs((*pool)->blocking());
    if (!redis_now.ok()) return fail(redis_now.status());
    now_ms = *redis_now;
  }
  const int64_t latest = now_ms - kTrimMinAgeMs;
  if (*before > latest) {
    return fail(engine::Refusal(
        absl::StatusCode::kFailedPrecondition, reason::kTrimTooRecent, "before",
        Cat("--before ", FormatTime(*before), " is later than now minus 1 hour (",
            FormatTime(latest), ", by Redis's clock): trim refuses recent times so that a "
            "mistyped --before cannot wipe today's journal; nothing was removed")));
  }
  cache::RedisSettlementStore store((*pool)->blocking());
  absl::StatusOr<int64_t> removed = store.TrimJournal(*before);
  if (!removed.ok()) return fail(removed.status());
  out << "removed " << *removed << " entries with stream ids before " << *before << " ("
      << FormatTime(*before) << ") from the " << kTagCount << " journal streams\n";
  return 0;
}

int RunStats(const Flags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<cache::RedisClients>> pool = Connect(flags);
  if (!pool.ok()) {
    err << "medsettle-journal: " << Message(pool.status()) << "\n" << kUsage;
    return 2;
  }
  absl::StatusOr<JournalStats> stats = Stats((*pool)->blocking());
  if (!stats.ok()) {
    err << "medsettle-journal: " << Message(stats.status()) << "\n";
    return 1;
  }
  out << "entries: " << stats->entries << " in " << stats->tags_with_entries << " of "
      << kTagCount << " tags\n"
      << "oldest: " << IdAndTime(stats->oldest_id, stats->oldest_tag) << "\n"
      << "newest: " << IdAndTime(stats->newest_id, stats->newest_tag) << "\n";
  return 0;
}

}  // namespace

absl::StatusOr<int64_t> ParseTime(std::string_view text, std::string_view flag) {
  int64_t ms = 0;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    if (!ParseNumber(text, &ms) || ms >= kMaxTimeMs) {
      return BadFlag(flag, Cat("is out of range (Unix milliseconds before the year 2200): ",
                               text));
    }
    return ms;
  }
  std::optional<int64_t> seconds = engine::ParseRfc3339(text);
  if (!seconds.has_value()) {
    return BadFlag(flag, Cat("must be RFC 3339 with an offset (2025-01-01T00:00:00+08:00) or "
                             "Unix milliseconds, got ",
                             text));
  }
  ms = *seconds * 1000;
  // ParseRfc3339 drops the fraction; keep its milliseconds (the rest is
  // truncated: stream ids count milliseconds).
  if (text.size() > 19 && text[19] == '.') {
    int scale = 100;
    for (size_t k = 20; k < text.size() && text[k] >= '0' && text[k] <= '9' && scale > 0;
         ++k, scale /= 10) {
      ms += (text[k] - '0') * scale;
    }
  }
  if (ms < 0) return BadFlag(flag, Cat("is before 1970: ", text));
  if (ms >= kMaxTimeMs) return BadFlag(flag, Cat("is after 2199: ", text));
  return ms;
}

std::string FormatTime(int64_t unix_ms) {
  const int64_t seconds = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  const int64_t millis = unix_ms - seconds * 1000;
  std::string text = engine::FormatRfc3339(seconds, kShownOffsetMinutes);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03d", static_cast<int>(millis));
  text.insert(19, fraction);  // after "YYYY-MM-DDTHH:MM:SS"
  return text;
}

absl::StatusOr<std::string> JsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (size_t k = 0; k < s.size();) {
    const auto c = static_cast<unsigned char>(s[k]);
    if (c >= 0x80) {
      const size_t n = Utf8Length(s, k);
      if (n == 0) {
        return engine::Refusal(absl::StatusCode::kFailedPrecondition,
                               reason::kJournalNotExportable, "",
                               Cat("byte ", k, " is not UTF-8"));
      }
      out.append(s.substr(k, n));
      k += n;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++k;
  }
  out.push_back('"');
  return out;
}

absl::StatusOr<std::string> RecordJson(const google::protobuf::Message& record) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;  // one line
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = false;
  options.always_print_enums_as_ints = false;
  std::string json;
  const auto printed = google::protobuf::util::MessageToJsonString(record, &json, options);
  if (!printed.ok()) {
    return engine::Refusal(absl::StatusCode::kFailedPrecondition, reason::kJournalNotExportable,
                           "record",
                           Cat("protobuf cannot print the ", record.GetTypeName(),
                               " as JSON: ", printed.ToString()));
  }
  return json;
}

absl::StatusOr<std::string> EntryJson(std::string_view tag, const cache::JournalEntry& e) {
  if (!e.status.ok()) return EntryNotDecoded(tag, e);
  const EntryHead head = HeadOf(e);
  std::string line = "{";
  absl::Status failed;
  auto text = [&](std::string_view key, std::string_view value) {
    if (!failed.ok()) return;
    absl::StatusOr<std::string> quoted = JsonString(value);
    if (!quoted.ok()) {
      failed = engine::Refusal(quoted.status().code(), reason::kJournalNotExportable, key,
                               Cat("journal entry ", e.stream_id, " of tag ", tag, ": field ",
                                   key, " is not UTF-8, so JSON cannot hold it unchanged"));
      return;
    }
    line += Cat(line.size() > 1 ? "," : "", "\"", key, "\":", *quoted);
  };
  text("id", e.stream_id);
  text("tag", tag);
  text("kind", cache::Name(e.kind));
  text("settlement_id", head.settlement_id);
  text("institution", head.institution);
  text("date", head.date);
  if (!failed.ok()) return failed;
  line += Cat(",\"at_ms\":", head.at_ms);
  absl::StatusOr<std::string> record =
      e.kind == cache::JournalKind::kSettle ? RecordJson(e.settlement) : RecordJson(e.reversal);
  if (!record.ok()) {
    return engine::Refusal(record.status().code(), reason::kJournalNotExportable, "record",
                           Cat("journal entry ", e.stream_id, " of tag ", tag, ": ",
                               std::string_view(record.status().message().data(),
                                                record.status().message().size())));
  }
  line += ",\"record\":";
  line += *record;
  line.push_back('}');
  return line;
}

absl::StatusOr<ExportSummary> Export(cache::RedisSettlementStore& store,
                                     const ExportOptions& options, std::ostream& out) {
  if (options.from_ms < 0) return BadFlag("from", "is before 1970");
  if (options.from_ms >= options.to_ms) {
    return BadFlag("to", "must be after --from (the window is [--from, --to))");
  }
  if (options.page_size < 1 || options.page_size > kMaxPageSize) {
    return BadFlag("page", Cat("must be 1..", kMaxPageSize));
  }
  // XRANGE's end is inclusive and completes "<ms>" to "<ms>-<max seq>":
  // to_ms - 1 ends the range just before to_ms-0.
  const int64_t last_ms = options.to_ms - 1;

  // One cursor per tag: the page read last and where the merge is in it.
  struct Cursor {
    std::string tag;
    std::vector<cache::JournalEntry> page;
    size_t next = 0;
    std::string last_id;  // of the page's last entry: the next page starts after it
    bool more = false;    // the page was full: the tag may hold more
    StreamId head;        // of page[next]
    bool started = false;  // head is set
  };
  std::vector<Cursor> cursors(kTagCount);
  ExportSummary summary;

  auto take_page = [&](Cursor& c,
                       absl::StatusOr<std::vector<cache::JournalEntry>> page) -> absl::Status {
    ++summary.reads;
    if (!page.ok()) return page.status();
    c.page = *std::move(page);
    c.next = 0;
    c.more = c.page.size() == static_cast<size_t>(options.page_size);
    if (!c.page.empty()) c.last_id = c.page.back().stream_id;
    return absl::OkStatus();
  };
  // Sets c.head to the entry at c.next, reading the next page when this
  // one is done; false when the tag has nothing more in the window.
  auto load_head = [&](Cursor& c) -> absl::StatusOr<bool> {
    if (c.next >= c.page.size()) {
      if (!c.more) return false;
      if (absl::Status s =
              take_page(c, store.ReadJournalAfter(c.tag, c.last_id, last_ms, options.page_size));
          !s.ok()) {
        return s;
      }
      if (c.page.empty()) return false;
    }
    std::optional<StreamId> id = ParseStreamId(c.page[c.next].stream_id);
    // Ids only grow within a stream; one that does not would repeat entries
    // (and could page forever).
    if (!id.has_value() || (c.started && *id <= c.head)) {
      return engine::Refusal(absl::StatusCode::kInternal, cache::reason::kSettlementRecordCorrupt,
                             "", Cat("journal:{", c.tag, "} returned the stream id ",
                                     c.page[c.next].stream_id,
                                     ", malformed or not above the one before it"));
    }
    c.head = *id;
    c.started = true;
    return true;
  };

  // The merge: a min-heap of the tags by their current entry's id, the
  // lower tag first on equal ids.
  auto later = [&cursors](int a, int b) {
    const Cursor& x = cursors[static_cast<size_t>(a)];
    const Cursor& y = cursors[static_cast<size_t>(b)];
    return x.head != y.head ? x.head > y.head : a > b;
  };
  std::priority_queue<int, std::vector<int>, decltype(later)> heads(later);
  for (int t = 0; t < kTagCount; ++t) {
    Cursor& c = cursors[static_cast<size_t>(t)];
    c.tag = TagText(t);
    if (absl::Status s =
            take_page(c, store.ReadJournal(c.tag, options.from_ms, last_ms, options.page_size));
        !s.ok()) {
      return s;
    }
    absl::StatusOr<bool> has = load_head(c);
    if (!has.ok()) return has.status();
    if (*has) heads.push(t);
  }

  while (!heads.empty()) {
    const int t = heads.top();
    heads.pop();
    Cursor& c = cursors[static_cast<size_t>(t)];
    // Moved out: the next page may replace c.page.
    cache::JournalEntry entry = std::move(c.page[c.next]);
    ++c.next;
    // Before the filter: whose entry it is cannot be read.
    if (!entry.status.ok()) return EntryNotDecoded(c.tag, entry);
    const EntryHead head = HeadOf(entry);
    if (options.institution.empty() || head.institution == options.institution) {
      absl::StatusOr<std::string> line = EntryJson(c.tag, entry);
      if (!line.ok()) return line.status();
      out << *line << '\n';
      if (!out) return absl::InternalError("writing the export failed");
      if (summary.entries == 0) {
        summary.first_id = entry.stream_id;
        summary.first_tag = c.tag;
      }
      summary.last_id = entry.stream_id;
      summary.last_tag = c.tag;
      ++summary.entries;
      if (entry.kind == cache::JournalKind::kSettle) {
        ++summary.settle_entries;
        summary.settled_total_cents += head.total_cents;
      } else {
        ++summary.reverse_entries;
        summary.reversed_total_cents += head.total_cents;
      }
    }
    absl::StatusOr<bool> has = load_head(c);
    if (!has.ok()) return has.status();
    if (*has) heads.push(t);
  }
  return summary;
}

absl::StatusOr<JournalStats> Stats(cache::RedisClient& redis) {
  JournalStats stats;
  std::optional<StreamId> oldest, newest;
  for (int t = 0; t < kTagCount; ++t) {
    const std::string tag = TagText(t);
    const std::string key = cache::JournalKey(tag);
    absl::StatusOr<std::vector<cache::RedisResult>> replies =
        redis.Pipeline(tag, {{"XLEN", key},
                        {"XRANGE", key, "-", "+", "COUNT", "1"},
                        {"XREVRANGE", key, "+", "-", "COUNT", "1"}});
    if (!replies.ok()) return replies.status();
    if (replies->size() != 3) return absl::InternalError("unexpected Redis reply to XLEN");
    for (const cache::RedisResult& r : *replies) {
      if (!r.ok()) return r.status();
    }
    const int64_t length = (*replies)[0]->integer;
    if (length == 0) continue;
    stats.entries += length;
    ++stats.tags_with_entries;
    const std::vector<cache::RedisReply>& first = (*replies)[1]->elements;
    const std::vector<cache::RedisReply>& last = (*replies)[2]->elements;
    if (first.empty() || last.empty() || first[0].elements.empty() ||
        last[0].elements.empty()) {
      continue;  // emptied between the commands: cannot happen in one pipeline
    }
    const std::string& first_id = first[0].elements[0].str;
    const std::string& last_id = last[0].elements[0].str;
    std::optional<StreamId> a = ParseStreamId(first_id);
    std::optional<StreamId> b = ParseStreamId(last_id);
    if (!a.has_value() || !b.has_value()) {
      return absl::InternalError(Cat("unexpected stream id in ", key));
    }
    if (!oldest.has_value() || *a < *oldest) {
      oldest = a;
      stats.oldest_id = first_id;
      stats.oldest_tag = tag;
    }
    if (!newest.has_value() || *b >= *newest) {  // equal ids: the later tag, as export orders them
      newest = b;
      stats.newest_id = last_id;
      stats.newest_tag = tag;
    }
  }
  return stats;
}

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const RunOptions& options) {
  if (args.empty() || (args[0] != "export" && args[0] != "trim" && args[0] != "stats")) {
    err << kUsage;
    return 2;
  }
  absl::StatusOr<Flags> flags = ParseFlags(args);
  if (!flags.ok()) {
    err << "medsettle-journal: " << Message(flags.status()) << "\n" << kUsage;
    return 2;
  }
  if (args[0] == "export") return RunExport(*flags, out, err);
  if (args[0] == "trim") return RunTrim(*flags, out, err, options);
  return RunStats(*flags, out, err);
}

}  // namespace medsettle::journal_tool
