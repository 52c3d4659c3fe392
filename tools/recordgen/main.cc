// medsettle-record-samples: realistic settlement records (LedgerRecord and
// LedgerReversal, serialized) from a seed, and the zstd dictionary trained
// on them. See cache/dictionaries/README.md for how the shipped
// dictionaries were made; the logic is in record_samples.{h,cc}.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/status.h"
#include "tools/recordgen/record_samples.h"

namespace {

namespace rg = medsettle::recordgen;

constexpr char kUsage[] =
    "usage: medsettle-record-samples COMMAND [flags]\n"
    "\n"
    "commands:\n"
    "  samples   write each sample to a file of its own in --out-dir (zstd --train input)\n"
    "  train     train a dictionary on the samples; write it to --out and its manifest\n"
    "            to --manifest\n"
    "  measure   average serialized and packed sizes per kind, plain zstd and with --dict\n"
    "\n"
    "flags:\n"
    "  --seed N            the samples' seed (default 1)\n"
    "  --settlements N     settlement records; reversals (~3%) come on top (default 1000)\n"
    "  --policies DIR      policy *.yaml (default " MEDSETTLE_DEFAULT_POLICY_DIR ")\n"
    "  --catalog FILE      catalog CSV (default " MEDSETTLE_DEFAULT_CATALOG ")\n"
    "  --out-dir DIR       samples: where to write\n"
    "  --out FILE          train: the dictionary\n"
    "  --manifest FILE     train: how it was made (seed, sample digest, libzstd, command)\n"
    "  --dict-id N         train: the dictionary id (decimal or 0x hex), required\n"
    "  --dict-bytes N      train: the dictionary's size (default 24576)\n"
    "  --level N           train/measure: the compression level (default 1)\n"
    "  --dict FILE         measure: a dictionary to compare with plain zstd\n";

struct Flags {
  std::string command;
  uint64_t seed = 1;
  int32_t settlements = 1000;
  std::string policies = MEDSETTLE_DEFAULT_POLICY_DIR;
  std::string catalog = MEDSETTLE_DEFAULT_CATALOG;
  std::string out_dir, out, manifest, dict;
  uint32_t dict_id = 0;
  size_t dict_bytes = 24 * 1024;
  int level = 1;
  std::string command_line;
};

[[noreturn]] void Usage(const std::string& error) {
  if (!error.empty()) std::cerr << "medsettle-record-samples: " << error << "\n\n";
  std::cerr << kUsage;
  std::exit(2);
}

uint64_t Number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const unsigned long long v = std::stoull(text, &used, 0);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  Usage(flag + ": not a number: " + text);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  if (argc < 2) Usage("");
  f.command = argv[1];
  f.command_line = "medsettle-record-samples " + f.command;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") Usage("");
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    f.command_line += " " + flag + " " + value;
    if (flag == "--seed") f.seed = Number(flag, value);
    else if (flag == "--settlements") f.settlements = static_cast<int32_t>(Number(flag, value));
    else if (flag == "--policies") f.policies = value;
    else if (flag == "--catalog") f.catalog = value;
    else if (flag == "--out-dir") f.out_dir = value;
    else if (flag == "--out") f.out = value;
    else if (flag == "--manifest") f.manifest = value;
    else if (flag == "--dict") f.dict = value;
    else if (flag == "--dict-id") f.dict_id = static_cast<uint32_t>(Number(flag, value));
    else if (flag == "--dict-bytes") f.dict_bytes = Number(flag, value);
    else if (flag == "--level") f.level = static_cast<int>(Number(flag, value));
    else Usage("unknown flag " + flag);
  }
  if (f.settlements < 1) Usage("--settlements must be at least 1");
  if (f.level < 1 || f.level > 19) Usage("--level must be 1..19");
  return f;
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::cerr << "medsettle-record-samples: cannot write " << path << "\n";
  return static_cast<bool>(out);
}

int Fail(const absl::Status& s) {
  std::cerr << "medsettle-record-samples: " << s.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  if (f.command != "samples" && f.command != "train" && f.command != "measure") {
    Usage("unknown command " + f.command);
  }
  absl::StatusOr<rg::RuleSet> rules = rg::LoadRuleSet(f.policies, f.catalog);
  if (!rules.ok()) return Fail(rules.status());
  absl::StatusOr<std::vector<rg::Sample>> samples =
      rg::GenerateSamples(*rules, {.seed = f.seed, .settlements = f.settlements});
  if (!samples.ok()) return Fail(samples.status());
  size_t total = 0;
  for (const rg::Sample& s : *samples) total += s.bytes.size();
  std::cerr << samples->size() << " samples, " << total << " bytes, sha256 "
            << rg::SamplesSha256(*samples) << "\n";

  if (f.command == "samples") {
    if (f.out_dir.empty()) Usage("samples needs --out-dir");
    std::filesystem::create_directories(f.out_dir);
    for (size_t i = 0; i < samples->size(); ++i) {
      const rg::Sample& s = (*samples)[i];
      char name[64];
      std::snprintf(name, sizeof name, "%06zu-%s.pb", i, std::string(rg::Name(s.kind)).c_str());
      if (!WriteFile(f.out_dir + "/" + name, s.bytes)) return 1;
    }
    return 0;
  }

  if (f.command == "train") {
    if (f.out.empty()) Usage("train needs --out");
    if (f.dict_id == 0) Usage("train needs --dict-id (a new id for every new dictionary)");
    absl::StatusOr<std::string> dict = rg::TrainDictionary(
        *samples, {.dict_id = f.dict_id, .dict_bytes = f.dict_bytes, .compression_level = f.level});
    if (!dict.ok()) return Fail(dict.status());
    if (!WriteFile(f.out, *dict)) return 1;
    char id[16];
    std::snprintf(id, sizeof id, "0x%08x", f.dict_id);
    const std::string manifest =
        "# " + std::filesystem::path(f.out).filename().string() +
        ": written by medsettle-record-samples train. Never edit; never change or remove a\n"
        "# shipped dictionary (README.md).\n"
        "file " + std::filesystem::path(f.out).filename().string() + "\n"
        "dict_id " + id + "\n"
        "dict_bytes " + std::to_string(dict->size()) + "\n"
        "dict_sha256 " + rg::Sha256Hex(*dict) + "\n"
        "seed " + std::to_string(f.seed) + "\n"
        "settlements " + std::to_string(f.settlements) + "\n"
        "level " + std::to_string(f.level) + "\n"
        "requested_bytes " + std::to_string(f.dict_bytes) + "\n"
        "samples " + std::to_string(samples->size()) + "\n"
        "samples_bytes " + std::to_string(total) + "\n"
        "samples_sha256 " + rg::SamplesSha256(*samples) + "\n"
        "libzstd " + rg::ZstdVersion() + "\n"
        "command " + f.command_line + "\n";
    if (!f.manifest.empty() && !WriteFile(f.manifest, manifest)) return 1;
    std::cout << manifest;
    return 0;
  }

  std::string dict;
  if (!f.dict.empty()) {
    std::ifstream in(f.dict, std::ios::binary);
    if (!in) Usage("cannot read " + f.dict);
    dict.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::cout << rg::FormatSizeReport(rg::MeasureSizes(*samples, dict, f.level));
  return 0;
}
