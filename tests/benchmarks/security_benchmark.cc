// What the security checks cost a request, single-threaded: verifying an
// e-insurance code (parse + Ed25519 signature + window), and checking and
// pseudonymising an ID number (GB 11643 + HMAC-SHA256). Recorded in
// docs/PERFORMANCE.md.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>

#include "cache/person_key.h"
#include "gateway/credentials/ec_token.h"

namespace medsettle {
namespace {

struct Fixture {
  credentials::IssuerSigningKey signer;
  credentials::IssuerKeyring keys;
  std::string token;
  int64_t now = 0;
};

const Fixture& TheFixture() {
  static const Fixture* f = [] {
    auto* out = new Fixture;
    absl::StatusOr<credentials::IssuerSigningKey> key = credentials::IssuerSigningKey::Generate();
    if (!key.ok()) std::abort();
    out->signer = *std::move(key);
    if (!out->keys.AddPublicKeyPem("bench-1", out->signer.PublicKeyPem()).ok()) std::abort();
    out->now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    credentials::EcTokenClaims claims;
    claims.key_id = "bench-1";
    claims.person_key = std::string(64, 'a');
    claims.presenter_key = std::string(64, 'b');
    claims.issued_at_minute = out->now / 60;
    claims.expires_at_minute = claims.issued_at_minute + 60;
    claims.scopes = credentials::kScopePharmacy;
    absl::StatusOr<std::string> token = out->signer.Issue(claims);
    if (!token.ok()) std::abort();
    out->token = *token;
    return out;
  }();
  return *f;
}

void BM_ParseEcToken(benchmark::State& state) {
  const Fixture& f = TheFixture();
  for (auto _ : state) {
    benchmark::DoNotOptimize(credentials::ParseEcToken(f.token));
  }
}
BENCHMARK(BM_ParseEcToken);

void BM_VerifyEcToken(benchmark::State& state) {
  const Fixture& f = TheFixture();
  for (auto _ : state) {
    absl::StatusOr<credentials::EcTokenClaims> claims =
        credentials::VerifyEcToken(f.token, f.keys, {.now_unix = f.now});
    if (!claims.ok()) state.SkipWithError("the token did not verify");
    benchmark::DoNotOptimize(claims);
  }
}
BENCHMARK(BM_VerifyEcToken);

void BM_PersonKeyOfIdNumber(benchmark::State& state) {
  absl::StatusOr<cache::PersonKeyer> keyer =
      cache::PersonKeyer::Create("medsettle-benchmark-secret-0123456789abcdef");
  if (!keyer.ok()) std::abort();
  for (auto _ : state) {
    benchmark::DoNotOptimize(keyer->KeyOfIdNumber("11010519491231002X"));
  }
}
BENCHMARK(BM_PersonKeyOfIdNumber);

}  // namespace
}  // namespace medsettle

BENCHMARK_MAIN();
