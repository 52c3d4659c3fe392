#include "tools/loadgen/loadgen_tool.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "engine/text.h"
#include "tools/loadgen/disk_floor.h"
#include "tools/loadgen/echo_server.h"
#include "tools/loadgen/html_report.h"
#include "tools/loadgen/population.h"
#include "tools/loadgen/report.h"
#include "tools/loadgen/request_builder.h"
#include "tools/loadgen/runner.h"
#include "tools/loadgen/schedule.h"

#ifndef MEDSETTLE_DEFAULT_CATALOG
#define MEDSETTLE_DEFAULT_CATALOG "engine/catalog/demo-catalog.csv"
#endif

namespace medsettle::loadgen {

using engine::Cat;
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSanPrefix = "medsettle://institution/";

struct Flags {
  std::string target = "127.0.0.1:50051";
  std::string method = "Settle";
  std::string scenario = "mix";
  std::string mix = "pharmacy=60,outpatient=30,inpatient=10";
  int concurrency = 50;
  double rate = 0;
  std::string schedule;
  double step_start = 0, step_size = 0, step_duration = 0, step_end = 0;
  double ramp_from = 0, ramp_to = 0, ramp_duration = 0;
  std::string duration;
  uint64_t count = 0;
  std::string warmup = "0";
  int connections = 4;
  int max_in_flight = 10000;
  int timeout_ms = 20000;
  double retry_ratio = 0;
  uint64_t seed = 1;
  std::string run_id;
  std::string persons, institutions, catalog = MEDSETTLE_DEFAULT_CATALOG;
  std::string institution;
  std::string ca, cert, key, cert_dir, tls_server_name;
  bool insecure_dev = false;
  std::string voucher_key, voucher_kid, key_file;
  std::string json, html;
  bool quiet = false;
  std::string floor_target;
  int floor_pairs = 5;
  std::string floor_round = "5";
  size_t echo_payload_bytes = 0;
  // serve-echo
  std::string listen = "127.0.0.1:0";
  std::string tls_cert, tls_key, tls_client_ca;
  // compare
  std::vector<std::string> files;
  // disk-floor
  std::string disk_dir;
  double disk_rate = DiskFloorOptions{}.rate;
  std::string disk_duration;  // default 10 s
  uint64_t disk_count = 0;
  size_t disk_bytes = DiskFloorOptions{}.bytes;
  std::string disk_json;
};

struct Usage {
  std::string message;
};

absl::StatusOr<std::string> ReadFile(std::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in) text << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(Cat("cannot read ", flag, " ", path));
  return text.str();
}

// "10", "10s", "2m", "1.5s" → seconds.
absl::StatusOr<double> ParseSeconds(std::string_view flag, std::string text) {
  double scale = 1;
  if (!text.empty() && text.back() == 's') text.pop_back();
  else if (!text.empty() && text.back() == 'm') {
    text.pop_back();
    scale = 60;
  }
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v >= 0) || v > 86400 * 7) {
    return absl::InvalidArgumentError(Cat(flag, ": \"", text, "\" is not a duration (10, 10s, 2m)"));
  }
  return v * scale;
}

// The institution a PEM certificate names: its SAN URI
// medsettle://institution/<id>, else its subject CN (as the gateway reads it).
absl::StatusOr<std::string> InstitutionOfCertificate(const std::string& path,
                                                     const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr),
                                                   &X509_free);
  if (cert == nullptr) return absl::InvalidArgumentError(Cat("--cert ", path, " holds no PEM certificate"));
  std::string id;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && id.empty(); ++i) {
      const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
      if (name->type != GEN_URI) continue;
      const std::string uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier)),
                            static_cast<size_t>(ASN1_STRING_length(name->d.uniformResourceIdentifier)));
      if (uri.rfind(kSanPrefix, 0) == 0) id = uri.substr(kSanPrefix.size());
    }
    GENERAL_NAMES_free(names);
  }
  if (id.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, cn,
                                  sizeof cn) > 0) {
      id = cn;
    }
  }
  if (id.empty()) return absl::InvalidArgumentError(Cat("--cert ", path, " names no institution"));
  return id;
}

absl::Status CheckKeyMatches(const std::string& cert_path, const std::string& cert_pem,
                             const std::string& key_path, const std::string& key_pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr), &X509_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) return absl::InvalidArgumentError(Cat("--key ", key_path, " holds no PEM private key"));
  if (cert == nullptr || X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        Cat("--key ", key_path, " does not belong to --cert ", cert_path));
  }
  return absl::OkStatus();
}

std::string DefaultRunId() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  uint64_t state = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()) ^
                   (static_cast<uint64_t>(getpid()) << 32);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "lg%08llx",
                static_cast<unsigned long long>(SplitMix64(&state) & 0xffffffffULL));
  return buffer;
}

// Everything a load run needs, checked.
struct Plan {
  RunConfig config;
  v1::RunOptions options;
  Population population;
  std::unique_ptr<RequestBuilder> builder;
  std::string run_id;
  double floor_round_s = 0;
};

absl::Status Prepare(const Flags& f, const CLI::App& app, Plan* plan, std::ostream& err) {
  RunConfig& c = plan->config;
  v1::RunOptions& o = plan->options;
  absl::StatusOr<Method> method = ParseMethod(f.method);
  if (!method.ok()) return method.status();
  c.method = *method;
  if (f.scenario != "mix") {
    return absl::InvalidArgumentError(Cat("--scenario: unknown scenario \"", f.scenario, "\" (mix)"));
  }
  absl::StatusOr<Mix> mix = ParseMix(f.mix);
  if (!mix.ok()) return mix.status();
  c.target = f.target;
  if (c.target.empty() || c.target.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(Cat("--target \"", f.target, "\" is not HOST:PORT"));
  }
  // Load shape.
  const bool open = app.count("--rate") > 0 || !f.schedule.empty();
  if (open && app.count("--concurrency") > 0) {
    return absl::InvalidArgumentError(
        "give --concurrency (closed loop) or --rate / --schedule (open loop), not both");
  }
  if (open) {
    ScheduleSpec spec;
    const std::string kind = f.schedule.empty() ? "const" : f.schedule;
    if (kind == "const") {
      spec.kind = ScheduleSpec::Kind::kConst;
      spec.rate = f.rate;
    } else if (kind == "step") {
      spec.kind = ScheduleSpec::Kind::kStep;
      spec.step_start = app.count("--step-start") ? f.step_start : f.rate;
      spec.step_size = f.step_size;
      spec.step_duration_s = f.step_duration;
      spec.step_end = f.step_end;
    } else if (kind == "ramp") {
      spec.kind = ScheduleSpec::Kind::kRamp;
      spec.ramp_from = f.ramp_from;
      spec.ramp_to = app.count("--ramp-to") ? f.ramp_to : f.rate;
      spec.ramp_duration_s = f.ramp_duration;
    } else {
      return absl::InvalidArgumentError(Cat("--schedule: \"", kind, "\" is not const, step or ramp"));
    }
    absl::StatusOr<Schedule> schedule = Schedule::Create(spec);
    if (!schedule.ok()) return schedule.status();
    c.schedule = *schedule;
  } else if (f.concurrency < 1 || f.concurrency > 100000) {
    return absl::InvalidArgumentError("--concurrency must be 1..100000");
  }
  c.concurrency = f.concurrency;
  if (!f.duration.empty() && f.count > 0) {
    return absl::InvalidArgumentError("give --duration or --count, not both");
  }
  if (f.count > 0) {
    c.count = f.count;
    c.duration_s = 0;
  } else {
    absl::StatusOr<double> d = ParseSeconds("--duration", f.duration.empty() ? "10" : f.duration);
    if (!d.ok()) return d.status();
    if (*d <= 0) return absl::InvalidArgumentError("--duration must be > 0");
    c.duration_s = *d;
  }
  absl::StatusOr<double> warmup = ParseSeconds("--warmup", f.warmup);
  if (!warmup.ok()) return warmup.status();
  c.warmup_s = *warmup;
  if (f.connections < 1 || f.connections > 256) return absl::InvalidArgumentError("--connections must be 1..256");
  c.connections = f.connections;
  if (f.max_in_flight < 1) return absl::InvalidArgumentError("--max-in-flight must be ≥ 1");
  c.max_in_flight = f.max_in_flight;
  if (f.timeout_ms < 1) return absl::InvalidArgumentError("--timeout-ms must be ≥ 1");
  c.timeout_ms = f.timeout_ms;
  if (!(f.retry_ratio >= 0 && f.retry_ratio <= 1)) {
    return absl::InvalidArgumentError("--retry-ratio must be from 0 to 1");
  }
  if (f.retry_ratio > 0 && c.method != Method::kSettle) {
    return absl::InvalidArgumentError("--retry-ratio re-sends Settle requests: use it with --method Settle");
  }
  c.retry_ratio = f.retry_ratio;
  c.seed = f.seed;
  c.echo_payload_bytes = f.echo_payload_bytes;
  plan->run_id = f.run_id.empty() ? DefaultRunId() : f.run_id;
  if (plan->run_id.size() > 40 || plan->run_id.find_first_not_of(
          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != std::string::npos) {
    return absl::InvalidArgumentError("--run-id must be 1..40 of [A-Za-z0-9_.-]");
  }
  if (!f.floor_target.empty()) {
    if (c.method == Method::kEcho) {
      return absl::InvalidArgumentError("--floor-target pairs echo with a real method: not with --method echo");
    }
    if (f.floor_target.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(Cat("--floor-target \"", f.floor_target, "\" is not HOST:PORT"));
    }
    if (f.floor_pairs < 1 || f.floor_pairs > 100) return absl::InvalidArgumentError("--floor-pairs must be 1..100");
    absl::StatusOr<double> round = ParseSeconds("--floor-round", f.floor_round);
    if (!round.ok()) return round.status();
    if (*round <= 0) return absl::InvalidArgumentError("--floor-round must be > 0");
    plan->floor_round_s = *round;
    if (f.count > 0) return absl::InvalidArgumentError("--floor-target runs rounds of --floor-round: not with --count");
  }
  // Output files: writable before anything is sent.
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--json", f.json}, {"--html", f.html}}) {
    if (path.empty()) continue;
    if (absl::Status s = CheckWritable(flag, path); !s.ok()) return s;
  }

  // Transport.
  const bool tls_flags = !f.ca.empty() || !f.cert.empty() || !f.key.empty() || !f.cert_dir.empty();
  if (f.insecure_dev && tls_flags) {
    return absl::InvalidArgumentError("give --insecure-dev or --ca/--cert/--key (or --cert-dir), not both");
  }
  if (!f.insecure_dev && !tls_flags) {
    return absl::InvalidArgumentError(
        "give --ca CA.pem --cert CERT.pem --key KEY.pem (mutual TLS), or --insecure-dev");
  }
  c.insecure_dev = f.insecure_dev;
  c.tls_server_name = f.tls_server_name;
  std::vector<std::pair<std::string, std::string>> cert_files;  // (cert, key)
  if (!f.insecure_dev) {
    if (f.ca.empty()) return absl::InvalidArgumentError("mutual TLS needs --ca");
    absl::StatusOr<std::string> ca = ReadFile("--ca", f.ca);
    if (!ca.ok()) return ca.status();
    if (ca->find("-----BEGIN CERTIFICATE") == std::string::npos) {
      return absl::InvalidArgumentError(Cat("--ca ", f.ca, " holds no PEM certificate"));
    }
    c.ca_pem = *ca;
    if (!f.cert_dir.empty() && (!f.cert.empty() || !f.key.empty())) {
      return absl::InvalidArgumentError("give --cert/--key or --cert-dir, not both");
    }
    if (f.cert_dir.empty()) {
      if (f.cert.empty() || f.key.empty()) return absl::InvalidArgumentError("mutual TLS needs --cert and --key");
      cert_files.emplace_back(f.cert, f.key);
    } else if (!fs::is_directory(f.cert_dir)) {
      return absl::InvalidArgumentError(Cat("--cert-dir ", f.cert_dir, " is not a folder"));
    }
  }

  // The population (not for echo).
  BuilderOptions builder_options;
  builder_options.seed = f.seed;
  builder_options.run_id = plan->run_id;
  builder_options.mix = *mix;
  if (c.method != Method::kEcho) {
    if (f.persons.empty()) return absl::InvalidArgumentError("--persons FILE is required (medsettle-snapshot synth)");
    if (f.institutions.empty()) return absl::InvalidArgumentError("--institutions FILE is required");
    absl::StatusOr<Population> population = LoadPopulation(f.persons, f.institutions, f.catalog);
    if (!population.ok()) return population.status();
    plan->population = *std::move(population);
    auto known = [&](const std::string& id) {
      return std::any_of(plan->population.institutions.begin(), plan->population.institutions.end(),
                         [&](const InstitutionRow& r) { return r.id == id; });
    };
    if (!f.institution.empty() && !known(f.institution)) {
      return absl::InvalidArgumentError(
          Cat("--institution ", f.institution, " is not in --institutions ", f.institutions));
    }
    if (!f.cert_dir.empty()) {
      for (const InstitutionRow& row : plan->population.institutions) {
        if (!f.institution.empty() && row.id != f.institution) continue;
        const fs::path cert = fs::path(f.cert_dir) / Cat(row.id, ".pem");
        const fs::path key = fs::path(f.cert_dir) / Cat(row.id, ".key.pem");
        if (!row.suspended && fs::exists(cert) && fs::exists(key)) cert_files.emplace_back(cert.string(), key.string());
      }
      if (cert_files.empty()) {
        return absl::InvalidArgumentError(
            Cat("--cert-dir ", f.cert_dir, " holds no <id>.pem and <id>.key.pem of an institution of --institutions"));
      }
    }
  } else if (!f.cert_dir.empty()) {
    return absl::InvalidArgumentError("--method echo takes one --cert and --key, not --cert-dir");
  }
  for (const auto& [cert_path, key_path] : cert_files) {
    absl::StatusOr<std::string> cert = ReadFile("--cert", cert_path);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFile("--key", key_path);
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> id = InstitutionOfCertificate(cert_path, *cert);
    if (!id.ok()) return id.status();
    if (absl::Status s = CheckKeyMatches(cert_path, *cert, key_path, *key); !s.ok()) return s;
    if (c.method != Method::kEcho) {
      const bool known = std::any_of(plan->population.institutions.begin(),
                                     plan->population.institutions.end(),
                                     [&](const InstitutionRow& r) { return r.id == *id; });
      if (!known) {
        return absl::InvalidArgumentError(Cat("--cert ", cert_path, " names institution ", *id,
                                              ", which is not in --institutions ", f.institutions));
      }
      if (!f.institution.empty() && *id != f.institution) {
        return absl::InvalidArgumentError(Cat("--cert ", cert_path, " names institution ", *id,
                                              ", not --institution ", f.institution));
      }
    }
    c.identities.push_back(Identity{*id, *cert, *key});
    builder_options.callers.push_back(*id);
  }
  if (f.insecure_dev && !f.institution.empty()) builder_options.callers.push_back(f.institution);
  for (const Identity& i : c.identities) o.add_identities(i.institution_id);
  if (f.insecure_dev) {
    o.set_transport("insecure-dev (x-medsettle-institution header)");
  } else {
    o.set_transport(c.identities.size() == 1 ? Cat("mutual TLS as ", c.identities[0].institution_id)
                                             : Cat("mutual TLS as ", c.identities.size(), " institutions"));
  }

  if (c.method != Method::kEcho) {
    absl::StatusOr<std::unique_ptr<RequestBuilder>> builder =
        RequestBuilder::Create(plan->population, builder_options);
    if (!builder.ok()) return builder.status();
    plan->builder = *std::move(builder);
    for (const std::string& note : plan->builder->notes()) err << "medsettle-loadgen: note: " << note << "\n";
    if (!f.voucher_key.empty()) {
      if (f.key_file.empty()) {
        return absl::InvalidArgumentError(
            "--voucher-key needs --key-file (the gateway's pseudonymisation secret: an "
            "e-insurance code carries the person key)");
      }
      absl::StatusOr<std::string> pem = ReadFile("--voucher-key", f.voucher_key);
      if (!pem.ok()) return pem.status();
      absl::StatusOr<std::string> secret = ReadFile("--key-file", f.key_file);
      if (!secret.ok()) return secret.status();
      std::string kid = f.voucher_kid;
      if (kid.empty()) {
        const std::string name = fs::path(f.voucher_key).filename().string();
        const std::string suffix = ".key.pem";
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          kid = name.substr(0, name.size() - suffix.size());
        }
      }
      if (kid.empty()) {
        return absl::InvalidArgumentError("--voucher-kid KID is required unless --voucher-key is named KID.key.pem");
      }
      if (absl::Status s = plan->builder->EnableVoucher(*pem, kid, *secret); !s.ok()) {
        return absl::InvalidArgumentError(Cat(std::string(s.message()), " (", f.voucher_key, ")"));
      }
      o.set_credential_note(Cat("e-insurance code (issued in-process, key id ", kid, ")"));
    } else {
      if (!f.key_file.empty()) return absl::InvalidArgumentError("--key-file is used only with --voucher-key");
      o.set_credential_note("ID number (no --voucher-key: no e-insurance codes)");
      if (plan->builder->effective_mix().weights[0] > 0) {
        err << "medsettle-loadgen: note: pharmacy purchases use the ID-number credential "
               "(give --voucher-key and --key-file to pay them by e-insurance code)\n";
      }
    }
    if (c.echo_payload_bytes == 0) {
      // The floor's payload: the size of a typical pharmacy Settle request.
      for (uint64_t seq = 0; seq < 64; ++seq) {
        const CallPlan sample = plan->builder->Build(seq, 0);
        if (sample.scenario == Scenario::kPharmacy) {
          c.echo_payload_bytes = sample.settle.ByteSizeLong();
          break;
        }
      }
    }
  }

  o.set_target(c.target);
  o.set_method(std::string(MethodName(c.method)));
  o.set_scenario(f.scenario);
  o.set_mix(plan->builder ? plan->builder->effective_mix().ToString() : "");
  o.set_loop(c.schedule ? "open" : "closed");
  o.set_concurrency(static_cast<uint32_t>(c.concurrency));
  if (c.schedule) {
    o.set_rate(c.schedule->spec().rate);
    o.set_schedule(f.schedule.empty() ? "const" : f.schedule);
    o.set_schedule_detail(c.schedule->Describe());
  }
  o.set_duration_s(f.floor_target.empty() ? c.duration_s : plan->floor_round_s);
  o.set_count(c.count);
  o.set_warmup_s(c.warmup_s);
  o.set_connections(static_cast<uint32_t>(c.connections));
  o.set_max_in_flight(static_cast<uint32_t>(c.max_in_flight));
  o.set_seed(c.seed);
  o.set_retry_ratio(c.retry_ratio);
  o.set_institution(f.institution);
  o.set_timeout_ms(static_cast<uint32_t>(c.timeout_ms));
  o.set_persons_file(f.persons);
  o.set_institutions_file(f.institutions);
  o.set_catalog_file(c.method == Method::kEcho ? "" : f.catalog);
  o.set_floor_target(f.floor_target);
  o.set_floor_pairs(f.floor_target.empty() ? 0 : static_cast<uint32_t>(f.floor_pairs));
  o.set_floor_round_s(plan->floor_round_s);
  return absl::OkStatus();
}

int RunLoadCommand(const Flags& f, const CLI::App& app, std::ostream& out, std::ostream& err,
                   const ToolEnv& env) {
  Plan plan;
  if (absl::Status s = Prepare(f, app, &plan, err); !s.ok()) {
    err << "medsettle-loadgen: " << s.message() << "\n";
    return kExitUsage;
  }
  // gRPC locks absl::Mutex several times per call, and an Abseil built
  // without NDEBUG (Debian's) tracks every lock in its deadlock graph:
  // about 4% of this tool's CPU per call, taken from the server under test
  // on the same cores. The tool's own locking is std::mutex.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  RunConfig& c = plan.config;
  c.stop = env.stop;
  if (!f.quiet) c.progress = &err;
  const std::string origin = c.schedule ? "scheduled start" : "send";
  RunResult total;
  v1::Floor floor;
  bool have_floor = false;
  if (f.floor_target.empty()) {
    absl::StatusOr<RunResult> result = RunLoad(c, plan.builder.get());
    if (!result.ok()) {
      err << "medsettle-loadgen: " << result.status().message() << "\n";
      return kExitFailed;
    }
    total = *std::move(result);
  } else {
    have_floor = true;
    std::vector<double> rps_ratios, p50_ratios;
    for (int pair = 1; pair <= f.floor_pairs; ++pair) {
      if (env.stop != nullptr && env.stop->load()) break;
      RunConfig echo = c;
      echo.method = Method::kEcho;
      echo.target = f.floor_target;
      echo.duration_s = plan.floor_round_s;
      echo.retry_ratio = 0;
      echo.progress_label = Cat("echo ", pair, "/", f.floor_pairs);
      absl::StatusOr<RunResult> e = RunLoad(echo, nullptr);
      if (!e.ok()) {
        err << "medsettle-loadgen: floor: " << e.status().message() << "\n";
        return kExitFailed;
      }
      RunConfig real = c;
      real.duration_s = plan.floor_round_s;
      real.first_seq = total.next_seq;  // new request ids every round
      real.progress_label = Cat(MethodName(c.method), " ", pair, "/", f.floor_pairs);
      absl::StatusOr<RunResult> t = RunLoad(real, plan.builder.get());
      if (!t.ok()) {
        err << "medsettle-loadgen: " << t.status().message() << "\n";
        return kExitFailed;
      }
      v1::FloorPair* p = floor.add_pairs();
      p->set_pair(static_cast<uint32_t>(pair));
      p->set_echo_rps(e->rps());
      p->set_target_rps(t->rps());
      p->set_rps_ratio(e->rps() > 0 ? t->rps() / e->rps() : 0);
      p->set_echo_p50_us(e->latency.Percentile(50));
      p->set_target_p50_us(t->latency.Percentile(50));
      p->set_echo_p99_us(e->latency.Percentile(99));
      p->set_target_p99_us(t->latency.Percentile(99));
      p->set_p50_ratio(p->echo_p50_us() > 0 ? static_cast<double>(p->target_p50_us()) /
                                                  static_cast<double>(p->echo_p50_us())
                                            : 0);
      rps_ratios.push_back(p->rps_ratio());
      p50_ratios.push_back(p->p50_ratio());
      total.Merge(*t);
    }
    floor.set_median_rps_ratio(Median(rps_ratios));
    floor.set_median_p50_ratio(Median(p50_ratios));
  }
  const v1::LoadReport report = BuildReport(total, plan.options, ReadMachine(), plan.run_id,
                                            origin, have_floor ? &floor : nullptr);
  out << TextSummary(report);
  int code = kExitOk;
  if (!f.json.empty()) {
    if (absl::Status s = WriteJson(report, f.json); !s.ok()) {
      err << "medsettle-loadgen: " << s.message() << "\n";
      code = kExitFailed;
    } else {
      out << "\nJSON report: " << f.json << "\n";
    }
  }
  if (!f.html.empty()) {
    if (!WriteTextFile(f.html, RenderHtml(report)).ok()) {
      err << "medsettle-loadgen: cannot write --html " << f.html << "\n";
      code = kExitFailed;
    } else {
      out << "HTML report: " << f.html << "\n";
    }
  }
  return code;
}

int ServeEcho(const Flags& f, std::ostream& out, std::ostream& err, const ToolEnv& env) {
  EchoServerOptions options;
  options.listen = f.listen;
  options.insecure_dev = f.insecure_dev;
  options.tls_cert_file = f.tls_cert;
  options.tls_key_file = f.tls_key;
  options.tls_client_ca_file = f.tls_client_ca;
  if (f.insecure_dev && (!f.tls_cert.empty() || !f.tls_key.empty() || !f.tls_client_ca.empty())) {
    err << "medsettle-loadgen: give --insecure-dev or --tls-cert/--tls-key/--tls-client-ca, not both\n";
    return kExitUsage;
  }
  // As the gateway does at start (gateway/main.cc), so that the floor pays
  // what the gateway pays: no deadlock graph over gRPC's absl::Mutex locks.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::StatusOr<std::unique_ptr<EchoServer>> server = EchoServer::Start(options);
  if (!server.ok()) {
    err << "medsettle-loadgen: " << server.status().message() << "\n";
    return server.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  const std::string host = f.listen.substr(0, f.listen.rfind(':'));
  out << "medsettle-loadgen serve-echo: listening on " << host << ":" << (*server)->port() << " ("
      << (f.insecure_dev ? "insecure-dev plaintext" : "mutual TLS") << ")\n"
      << std::flush;
  while (env.stop == nullptr || !env.stop->load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (*server)->Shutdown();
  return kExitOk;
}

int Compare(const Flags& f, std::ostream& out, std::ostream& err) {
  if (f.files.size() != 2) {
    err << "medsettle-loadgen: compare needs two JSON reports: compare A.json B.json\n";
    return kExitUsage;
  }
  absl::StatusOr<v1::LoadReport> a = ReadJson(f.files[0]);
  if (!a.ok()) {
    err << "medsettle-loadgen: " << a.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<v1::LoadReport> b = ReadJson(f.files[1]);
  if (!b.ok()) {
    err << "medsettle-loadgen: " << b.status().message() << "\n";
    return kExitUsage;
  }
  out << CompareReports(*a, *b, f.files[0], f.files[1]);
  return kExitOk;
}

int DiskFloor(const Flags& f, std::ostream& out, std::ostream& err, const ToolEnv& env) {
  auto usage = [&err](const std::string& message) {
    err << "medsettle-loadgen: " << message << "\n";
    return kExitUsage;
  };
  if (!f.disk_duration.empty() && f.disk_count > 0) {
    return usage("give --duration or --count, not both");
  }
  DiskFloorOptions o{.dir = f.disk_dir, .rate = f.disk_rate, .count = f.disk_count,
                     .bytes = f.disk_bytes};
  absl::StatusOr<double> seconds =
      ParseSeconds("--duration", f.disk_duration.empty() ? "10" : f.disk_duration);
  if (!seconds.ok()) return usage(std::string(seconds.status().message()));
  o.duration_s = *seconds;
  if (absl::Status s = ValidateDiskFloor(o); !s.ok()) return usage(std::string(s.message()));
  // Checked before the measurement, so a bad path costs no writes to the disk measured.
  if (!f.disk_json.empty()) {
    if (absl::Status s = CheckWritable("--json", f.disk_json); !s.ok()) {
      return usage(std::string(s.message()));
    }
  }
  absl::StatusOr<DiskFloorResult> result = MeasureDiskFloor(o, env.stop);
  if (!result.ok()) {
    err << "medsettle-loadgen: " << result.status().message() << "\n";
    return kExitFailed;
  }
  out << FormatDiskFloor(o, *result);
  if (!f.disk_json.empty() && !WriteTextFile(f.disk_json, DiskFloorJson(o, *result)).ok()) {
    err << "medsettle-loadgen: cannot write --json " << f.disk_json << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

int Run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        const ToolEnv& env) {
  Flags f;
  CLI::App app{"medsettle-loadgen: load tests of the medsettle gateway, with reports", "medsettle-loadgen"};
  app.set_help_all_flag("--help-all", "every subcommand's flags");
  app.add_option("--target", f.target, "gateway HOST:PORT (the only address called)")->capture_default_str();
  app.add_option("--method", f.method, "Settle, PreSettle, CheckCoverage, Reverse or echo")->capture_default_str();
  app.add_option("--scenario", f.scenario, "request scenario: mix (the --mix weights)")->capture_default_str();
  app.add_option("--mix", f.mix, "scenario weights")->capture_default_str();
  app.add_option("--concurrency,-c", f.concurrency, "closed loop: calls kept in flight")->capture_default_str();
  app.add_option("--rate,-r", f.rate, "open loop: calls/s (const schedule; step start / ramp end)");
  app.add_option("--schedule", f.schedule, "open loop: const, step or ramp");
  app.add_option("--step-start", f.step_start, "step: first rate (calls/s; default --rate)");
  app.add_option("--step-size", f.step_size, "step: rate change per step (calls/s)");
  app.add_option("--step-duration", f.step_duration, "step: seconds per step");
  app.add_option("--step-end", f.step_end, "step: the rate it stops at (calls/s)");
  app.add_option("--ramp-from", f.ramp_from, "ramp: starting rate (calls/s)");
  app.add_option("--ramp-to", f.ramp_to, "ramp: final rate (calls/s; default --rate)");
  app.add_option("--ramp-duration", f.ramp_duration, "ramp: seconds from --ramp-from to --ramp-to");
  app.add_option("--duration,-z", f.duration, "measured duration: 10, 10s, 2m (default 10s)");
  app.add_option("--count,-n", f.count, "measured calls instead of a duration");
  app.add_option("--warmup", f.warmup, "warm-up before the measured part, excluded (10s)")->capture_default_str();
  app.add_option("--connections", f.connections, "channels, each its own connection")->capture_default_str();
  app.add_option("--max-in-flight", f.max_in_flight, "open loop: due calls beyond it are dropped")->capture_default_str();
  app.add_option("--timeout-ms", f.timeout_ms, "per-call deadline")->capture_default_str();
  app.add_option("--retry-ratio", f.retry_ratio, "share of Settles re-sent with the same request id (0..1)")->capture_default_str();
  app.add_option("--seed", f.seed, "same seed, same request sequence")->capture_default_str();
  app.add_option("--run-id", f.run_id, "request id prefix (default: lg + 8 random hex)");
  app.add_option("--persons", f.persons, "persons CSV (medsettle-snapshot synth --out)");
  app.add_option("--institutions", f.institutions, "institutions CSV (synth --institutions-out)");
  app.add_option("--catalog", f.catalog, "catalog CSV")->capture_default_str();
  app.add_option("--institution", f.institution, "send as this institution only (must be in the CSV)");
  app.add_option("--ca", f.ca, "mutual TLS: the CA of the gateway's certificate");
  app.add_option("--cert", f.cert, "mutual TLS: the institution's certificate (names it)");
  app.add_option("--key", f.key, "mutual TLS: its private key");
  app.add_option("--cert-dir", f.cert_dir, "mutual TLS: <id>.pem and <id>.key.pem of several institutions");
  app.add_option("--tls-server-name", f.tls_server_name, "name checked against the server certificate");
  app.add_flag("--insecure-dev", f.insecure_dev, "plaintext, institutions by the x-medsettle-institution header");
  app.add_option("--voucher-key", f.voucher_key, "voucher platform private key (KID.key.pem): pay pharmacy purchases by e-insurance code");
  app.add_option("--voucher-kid", f.voucher_kid, "its key id (default: from the file name)");
  app.add_option("--key-file", f.key_file, "the gateway's pseudonymisation secret (person keys in codes)");
  app.add_option("--json", f.json, "write the JSON report here");
  app.add_option("--html", f.html, "write the HTML report here");
  app.add_flag("--quiet,-q", f.quiet, "no progress line");
  app.add_option("--floor-target", f.floor_target, "echo server HOST:PORT: alternate echo and the method in pairs");
  app.add_option("--floor-pairs", f.floor_pairs, "pairs of rounds")->capture_default_str();
  app.add_option("--floor-round", f.floor_round, "seconds per round")->capture_default_str();
  app.add_option("--echo-payload-bytes", f.echo_payload_bytes, "echo payload size (default: a pharmacy Settle's)");

  CLI::App* serve = app.add_subcommand("serve-echo", "serve the echo floor (medsettle.loadgen.v1.Echo)");
  serve->add_option("--listen", f.listen, "HOST:PORT (port 0: any free port)")->capture_default_str();
  serve->add_option("--tls-cert", f.tls_cert, "server certificate (PEM)");
  serve->add_option("--tls-key", f.tls_key, "its private key");
  serve->add_option("--tls-client-ca", f.tls_client_ca, "CA client certificates must chain to");
  serve->add_flag("--insecure-dev", f.insecure_dev, "plaintext on loopback");
  CLI::App* compare = app.add_subcommand("compare", "compare two --json reports (B against A)");
  compare->add_option("files", f.files, "A.json B.json")->expected(2);
  CLI::App* disk = app.add_subcommand(
      "disk-floor", "time append + fdatasync in a directory: the wait appendfsync always adds");
  disk->add_option("--dir", f.disk_dir, "the directory to measure (Redis's dir)")->required();
  disk->add_option("--rate,-r", f.disk_rate, "appends per second (0: back to back)")
      ->capture_default_str();
  disk->add_option("--duration,-z", f.disk_duration, "10, 10s, 2m (default 10s)");
  disk->add_option("--count,-n", f.disk_count, "appends instead of a duration");
  disk->add_option("--bytes", f.disk_bytes, "bytes per append")->capture_default_str();
  disk->add_option("--json", f.disk_json, "also write the figures as JSON here");

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "medsettle-loadgen: " << e.what() << "\n";
    return kExitUsage;
  }
  if (serve->parsed()) return ServeEcho(f, out, err, env);
  if (compare->parsed()) return Compare(f, out, err);
  if (disk->parsed()) return DiskFloor(f, out, err, env);
  return RunLoadCommand(f, app, out, err, env);
}

}  // namespace medsettle::loadgen
