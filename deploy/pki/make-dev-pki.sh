#!/usr/bin/env bash
# A development PKI for medsettle's mutual TLS, made with the openssl
# command line only (deploy/pki/README.md):
#
#   OUT_DIR/ca.pem, ca.key.pem          the development CA (kept if present)
#   OUT_DIR/server.pem, server.key.pem  the gateway: localhost, 127.0.0.1, ::1
#   OUT_DIR/<ID>.pem, <ID>.key.pem      one client certificate per institution:
#                                       SAN URI medsettle://institution/<ID>, CN=<ID>
#   OUT_DIR/crl/                        the CA's certificate revocation lists for the
#                                       gateway's tls.crl_dir: crl-000001.pem (nothing
#                                       revoked), one more per --revoke, each with its
#                                       <hash>.rN name (openssl rehash)
#   OUT_DIR/ca-db/                      what the CA revoked (an openssl ca database)
#
# With --test-certs, also what the tests need to see refused or accepted:
#
#   OUT_DIR/other-ca/ca.pem, ca.key.pem, <ID>.pem, <ID>.key.pem
#                                       another CA and institution certificates it signed
#   OUT_DIR/expired/<ID>.pem, <ID>.key.pem
#                                       signed by the CA, valid 2020-01-01 .. 2021-01-01
#   OUT_DIR/cn-only/<ID>.pem, <ID>.key.pem
#                                       signed by the CA, CN=<ID> and no SAN URI
#   OUT_DIR/other-ca/crl/               the other CA's CRL (rehashed)
#   OUT_DIR/expired-crl/                a CRL of the CA valid 2020-01-01 .. 2020-02-01 (rehashed)
#   OUT_DIR/forged-crl/                 a CRL naming the CA but signed by the other CA's key
#                                       (rehashed)
#
# usage: bash deploy/pki/make-dev-pki.sh [--force] [--test-certs] [--server-name NAME]...
#                                        [--days N] OUT_DIR [INSTITUTION_ID ...]
#        bash deploy/pki/make-dev-pki.sh --revoke INSTITUTION_ID [--revoke ID]... OUT_DIR
#   --force           a new CA (no revocations yet) and every certificate re-issued
#                     (default: keep what exists, verifies against the CA and is not
#                     revoked)
#   --test-certs      also other-ca/, expired/, cn-only/ and the test CRLs (above)
#   --server-name N   another DNS name or IP address for the server certificate
#   --days N          validity of new leaf certificates (default 365; the CA: 3650)
#   --revoke ID       revoke OUT_DIR/ID.pem and publish the CA's next CRL: a new file
#                     crl/crl-NNNNNN.pem (sorting after the others) with a later
#                     lastUpdate, then openssl rehash. Issues nothing: rerun without
#                     --revoke to give the institution a new certificate
# Without INSTITUTION_IDs: the demo's institutions (those medsettle-snapshot synth
# creates): Quzhou hospitals of levels 1, 2, 3, the Fenghua community centre and
# two Quzhou pharmacies.
#
# Keys are EC P-256, PKCS#8 PEM, mode 0600. For development and tests only:
# the CA key sits next to the certificates it signs. CRLs are valid for 30
# days; a run renews the CA's CRL when it has less than 7 days left.
set -euo pipefail

usage() {  # usage EXIT_CODE: the header's usage paragraph
  sed -n '/^# usage:/,/^# two Quzhou/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

force=0
test_certs=0
days=365
server_names=(localhost 127.0.0.1 ::1)
out=""
ids=()
revoke_ids=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --test-certs) test_certs=1 ;;
    --server-name) [ $# -ge 2 ] || usage; server_names+=("$2"); shift ;;
    --server-name=*) server_names+=("${1#*=}") ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift ;;
    --days=*) days=${1#*=} ;;
    --revoke) [ $# -ge 2 ] || usage; revoke_ids+=("$2"); shift ;;
    --revoke=*) revoke_ids+=("${1#*=}") ;;
    -h|--help) usage 0 ;;
    -*) echo "make-dev-pki: unknown option $1" >&2; usage ;;
    *) if [ -z "$out" ]; then out=$1; else ids+=("$1"); fi ;;
  esac
  shift
done
[ -n "$out" ] || usage
[[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "make-dev-pki: --days must be 1..99999" >&2; exit 2; }
if [ ${#revoke_ids[@]} -gt 0 ]; then
  # Revoking changes nothing else: no new CA, no certificates issued.
  [ ${#ids[@]} -eq 0 ] && [ "$force" = 0 ] && [ "$test_certs" = 0 ] ||
    { echo "make-dev-pki: --revoke takes only OUT_DIR (no --force, --test-certs or ids to issue)" >&2; exit 2; }
elif [ ${#ids[@]} -eq 0 ]; then
  ids=(H3308000000 H3308000001 H3308000002 C3302130003 P3308000006 P3308000007)
fi
for id in "${ids[@]}" "${revoke_ids[@]}"; do
  # The gateway's rule for an institution id (gateway/authenticator.h).
  [[ "$id" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] ||
    { echo "make-dev-pki: \"$id\" is not an institution id (1-64 of A-Z a-z 0-9 _ . -)" >&2; exit 2; }
  case "$id" in ca|server|ca.key|server.key) echo "make-dev-pki: \"$id\" is a reserved name" >&2; exit 2 ;; esac
done
command -v openssl >/dev/null || { echo "make-dev-pki: openssl is not installed" >&2; exit 1; }

if [ ${#revoke_ids[@]} -gt 0 ] && [ ! -d "$out" ]; then
  echo "make-dev-pki: no folder $out to revoke in" >&2
  exit 1
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

san=""
for n in "${server_names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
done

# One configuration for every step; ${ENV::…} is filled per certificate.
cat >"$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:medsettle://institution/\${ENV::PKI_ID}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_cn_only_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca]
default_ca = past_ca
[past_ca]
dir = \${ENV::PKI_WORK}
database = \$dir/index.txt
new_certs_dir = \$dir
serial = \$dir/serial
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
[any_policy]
commonName = supplied
organizationName = optional
# The CA's revocations and CRLs (openssl ca -revoke / -gencrl), its
# database in \${ENV::PKI_CA_DB}.
[crl_ca]
dir = \${ENV::PKI_CA_DB}
database = \$dir/index.txt
crlnumber = \$dir/crlnumber
default_md = sha256
unique_subject = no
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
CNF
export PKI_WORK="$work" PKI_ID=unused PKI_CA_DB=unused
: >"$work/index.txt"
openssl rand -hex 16 >"$work/serial"

ossl() { OPENSSL_CONF="$work/openssl.cnf" openssl "$@" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; }
made() { printf '  %-8s %s\n' "$1" "${2#"$out"/}"; }

new_key() {  # new_key FILE
  (umask 077; ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
  chmod 600 "$1"
}

# make_ca DIR NAME: DIR/ca.pem and DIR/ca.key.pem, kept when both exist (unless --force).
make_ca() {
  local dir=$1 name=$2
  mkdir -p "$dir"
  if [ "$force" = 0 ] && [ -s "$dir/ca.pem" ] && [ -s "$dir/ca.key.pem" ]; then
    chmod 600 "$dir/ca.key.pem"
    made kept "$dir/ca.pem"
    return
  fi
  # The previous CA's revocations and CRLs mean nothing for a new CA.
  rm -rf "$dir/crl" "$dir/ca-db"
  new_key "$dir/ca.key.pem"
  ossl req -x509 -new -config "$work/openssl.cnf" -key "$dir/ca.key.pem" -sha256 -days 3650 \
    -subj "/O=medsettle development/CN=$name" -extensions ca_ext -out "$dir/ca.pem"
  chmod 644 "$dir/ca.pem"
  made made "$dir/ca.pem"
}

# issue CA_DIR OUT_BASE SUBJECT EXTENSIONS [past]: OUT_BASE.pem and OUT_BASE.key.pem,
# kept when they exist, verify against CA_DIR/ca.pem and are not revoked by its
# newest CRL (unless --force).
issue() {
  local ca_dir=$1 base=$2 subject=$3 ext=$4 past=${5:-}
  if [ "$force" = 0 ] && [ -s "$base.pem" ] && [ -s "$base.key.pem" ] &&
     { [ -n "$past" ] || openssl verify -CAfile "$ca_dir/ca.pem" -crl_check \
         -CRLfile "$(newest_crl "$ca_dir")" "$base.pem" >/dev/null 2>&1; }; then
    chmod 600 "$base.key.pem"
    made kept "$base.pem"
    return
  fi
  new_key "$base.key.pem"
  ossl req -new -config "$work/openssl.cnf" -key "$base.key.pem" -subj "$subject" -out "$work/csr"
  if [ -n "$past" ]; then
    # openssl x509 -req cannot back-date; openssl ca can.
    ossl ca -config "$work/openssl.cnf" -batch -notext -cert "$ca_dir/ca.pem" \
      -keyfile "$ca_dir/ca.key.pem" -startdate 20200101000000Z -enddate 20210101000000Z \
      -extfile "$work/openssl.cnf" -extensions "$ext" -in "$work/csr" -out "$base.pem"
  else
    ossl x509 -req -in "$work/csr" -CA "$ca_dir/ca.pem" -CAkey "$ca_dir/ca.key.pem" \
      -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
      -extfile "$work/openssl.cnf" -extensions "$ext" -out "$base.pem"
  fi
  chmod 644 "$base.pem"
  made made "$base.pem"
}

# ---- Certificate revocation lists ----
# The gateway hands tls.crl_dir to OpenSSL's hashed-folder lookup: it reads a
# CA's CRLs as <hash>.r0, .r1, ... (made by openssl rehash), looks again at
# every handshake, and uses the CRL with the latest lastUpdate (of two equal,
# the one it read first). So a new CRL is a new file whose name sorts after
# the others (rehash then keeps the existing links' numbers and adds the
# next .rN) with a lastUpdate later than the last one's. docs/SECURITY.md.
crl_days=30

newest_crl() {  # newest_crl CA_DIR: its latest crl-NNNNNN.pem, or nothing
  local files=()
  shopt -s nullglob
  files=("$1"/crl/crl-[0-9][0-9][0-9][0-9][0-9][0-9].pem)
  shopt -u nullglob
  [ ${#files[@]} -eq 0 ] || printf '%s\n' "${files[${#files[@]}-1]}"
}

crl_time() {  # crl_time FILE lastupdate|nextupdate: seconds since 1970
  date -u -d "$(openssl crl -in "$1" -noout "-$2" | cut -d= -f2)" +%s
}

init_ca_db() {  # init_ca_db CA_DIR: CA_DIR/ca-db and CA_DIR/crl
  mkdir -p "$1/ca-db" "$1/crl"
  [ -f "$1/ca-db/index.txt" ] || : >"$1/ca-db/index.txt"
  [ -f "$1/ca-db/crlnumber" ] || echo 01 >"$1/ca-db/crlnumber"
}

# publish_crl CA_DIR: the CA's next CRL (everything in CA_DIR/ca-db revoked) as
# CA_DIR/crl/crl-NNNNNN.pem, numbered after the last one, its lastUpdate at least a
# second after the last one's; then openssl rehash.
publish_crl() {
  local ca_dir=$1 last n=1 file
  last=$(newest_crl "$ca_dir")
  if [ -n "$last" ]; then
    local last_update
    last_update=$(crl_time "$last" lastupdate)
    while [ "$(date -u +%s)" -le "$last_update" ]; do sleep 0.2; done
    n=${last##*/crl-}
    n=$((10#${n%.pem} + 1))
  fi
  file=$(printf '%s/crl/crl-%06d.pem' "$ca_dir" "$n")
  PKI_CA_DB="$ca_dir/ca-db" ossl ca -config "$work/openssl.cnf" -name crl_ca -batch -gencrl \
    -cert "$ca_dir/ca.pem" -keyfile "$ca_dir/ca.key.pem" -crldays "$crl_days" -out "$work/crl.pem"
  chmod 644 "$work/crl.pem"
  mv "$work/crl.pem" "$file"
  ossl rehash "$ca_dir/crl"
  made made "$file"
}

# ensure_crl CA_DIR: a current CRL of the CA in CA_DIR/crl (a new CA's lists nothing),
# renewed when it has less than 7 days left.
ensure_crl() {
  local ca_dir=$1 last
  init_ca_db "$ca_dir"
  last=$(newest_crl "$ca_dir")
  if [ -n "$last" ] && [ "$(crl_time "$last" nextupdate)" -gt $(($(date -u +%s) + 7 * 86400)) ]; then
    made kept "$last"
    return
  fi
  publish_crl "$ca_dir"
}

# test_crl DIR CA_CERT CA_KEY OPENSSL_CA_ARGS...: DIR holding one CRL of that CA, made
# anew, from an empty database of its own (the CA's CRL numbers are left alone).
test_crl() {
  local dir=$1 cert=$2 key=$3
  shift 3
  rm -rf "$dir" "$work/test-db"
  mkdir -p "$dir"
  init_ca_db "$work/test-db"
  PKI_CA_DB="$work/test-db/ca-db" ossl ca -config "$work/openssl.cnf" -name crl_ca -batch -gencrl \
    -cert "$cert" -keyfile "$key" "$@" -out "$dir/crl.pem"
  chmod 644 "$dir/crl.pem"
  ossl rehash "$dir"
  made made "$dir/crl.pem"
}

check_revocable() {  # check_revocable ID: OUT_DIR/ID.pem exists and is the CA's
  local cert="$out/$1.pem"
  [ -s "$cert" ] || { echo "make-dev-pki: no certificate $cert to revoke" >&2; exit 1; }
  openssl verify -CAfile "$out/ca.pem" "$cert" >/dev/null 2>&1 ||
    { echo "make-dev-pki: $cert is not a certificate of the CA $out/ca.pem" >&2; exit 1; }
}

# revoke ID: OUT_DIR/ID.pem into the CA's database (added to `revoked` unless it was
# revoked before).
revoke() {
  local cert="$out/$1.pem" serial
  serial=$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2)
  if awk -F'\t' -v s="$serial" '$1 == "R" && $4 == s { found = 1 } END { exit !found }' \
       "$out/ca-db/index.txt"; then
    made kept "$cert (revoked before, serial $serial)"
    return
  fi
  PKI_CA_DB="$out/ca-db" ossl ca -config "$work/openssl.cnf" -name crl_ca -batch \
    -cert "$out/ca.pem" -keyfile "$out/ca.key.pem" -revoke "$cert"
  made revoked "$cert (serial $serial)"
  revoked+=("$1")
}

echo "make-dev-pki: $out"
if [ ${#revoke_ids[@]} -gt 0 ]; then
  [ -s "$out/ca.pem" ] && [ -s "$out/ca.key.pem" ] ||
    { echo "make-dev-pki: no CA in $out (ca.pem, ca.key.pem) to revoke with" >&2; exit 1; }
  init_ca_db "$out"
  for id in "${revoke_ids[@]}"; do check_revocable "$id"; done  # all or none
  revoked=()
  for id in "${revoke_ids[@]}"; do revoke "$id"; done
  # Nothing new: a new CRL only if the newest one misses a revocation (a run
  # that stopped between revoking and publishing).
  last=$(newest_crl "$out")
  if [ ${#revoked[@]} -eq 0 ] && [ -n "$last" ] &&
     [ "$(openssl crl -in "$last" -noout -text | grep -c 'Serial Number:')" = \
       "$(grep -c '^R' "$out/ca-db/index.txt")" ]; then
    echo "make-dev-pki: nothing newly revoked; ${last#"$out"/} lists every revoked certificate"
    exit 0
  fi
  publish_crl "$out"
  crl=$(newest_crl "$out")
  echo "make-dev-pki: revoked ${revoked[*]}; ${crl#"$out"/} lists every revoked certificate."
  echo "make-dev-pki: publish it: copy it into each gateway's tls.crl_dir under its name, then openssl rehash there"
  exit 0
fi
make_ca "$out" "medsettle development CA"
ensure_crl "$out"
issue "$out" "$out/server" "/O=medsettle development/CN=medsettle-gateway" server_ext
for id in "${ids[@]}"; do
  PKI_ID=$id issue "$out" "$out/$id" "/O=medsettle development/CN=$id" client_ext
done
if [ "$test_certs" = 1 ]; then
  make_ca "$out/other-ca" "another CA (tests)"
  ensure_crl "$out/other-ca"
  mkdir -p "$out/expired" "$out/cn-only"
  for id in "${ids[@]}"; do
    PKI_ID=$id issue "$out/other-ca" "$out/other-ca/$id" "/O=medsettle development/CN=$id" client_ext
    PKI_ID=$id issue "$out" "$out/expired/$id" "/O=medsettle development/CN=$id" client_ext past
    issue "$out" "$out/cn-only/$id" "/O=medsettle development/CN=$id" client_cn_only_ext
  done
  test_crl "$out/expired-crl" "$out/ca.pem" "$out/ca.key.pem" \
    -crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z
  # A certificate with the CA's name and the other CA's key signs the forgery.
  ossl req -x509 -new -config "$work/openssl.cnf" -key "$out/other-ca/ca.key.pem" -sha256 -days 30 \
    -subj "/O=medsettle development/CN=medsettle development CA" -extensions ca_ext \
    -out "$work/forger.pem"
  test_crl "$out/forged-crl" "$work/forger.pem" "$out/other-ca/ca.key.pem" -crldays "$crl_days"
fi
echo "make-dev-pki: server certificate for ${server_names[*]}; institutions ${ids[*]}"
