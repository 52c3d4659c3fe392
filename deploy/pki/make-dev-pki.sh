#!/usr/bin/env bash
# A development PKI for medsettle's mutual TLS, made with the openssl
# command line only (deploy/pki/README.md):
#
#   OUT_DIR/ca.pem, ca.key.pem          the development CA (kept if present)
#   OUT_DIR/server.pem, server.key.pem  the gateway: localhost, 127.0.0.1, ::1
#   OUT_DIR/<ID>.pem, <ID>.key.pem      one client certificate per institution:
#                                       SAN URI medsettle://institution/<ID>, CN=<ID>
#
# With --test-certs, also what the tests need to see refused or accepted:
#
#   OUT_DIR/other-ca/ca.pem, ca.key.pem, <ID>.pem, <ID>.key.pem
#                                       another CA and institution certificates it signed
#   OUT_DIR/expired/<ID>.pem, <ID>.key.pem
#                                       signed by the CA, valid 2020-01-01 .. 2021-01-01
#   OUT_DIR/cn-only/<ID>.pem, <ID>.key.pem
#                                       signed by the CA, CN=<ID> and no SAN URI
#
# usage: bash deploy/pki/make-dev-pki.sh [--force] [--test-certs] [--server-name NAME]...
#                                        [--days N] OUT_DIR [INSTITUTION_ID ...]
#   --force           a new CA and every certificate re-issued (default: keep what
#                     exists and still verifies against the CA)
#   --test-certs      also other-ca/, expired/ and cn-only/ (above)
#   --server-name N   another DNS name or IP address for the server certificate
#   --days N          validity of new leaf certificates (default 365; the CA: 3650)
# Without INSTITUTION_IDs: the demo's institutions (those medsettle-snapshot synth
# creates): Quzhou hospitals of levels 1, 2, 3, the Fenghua community centre and
# two Quzhou pharmacies.
#
# Keys are EC P-256, PKCS#8 PEM, mode 0600. For development and tests only:
# the CA key sits next to the certificates it signs.
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
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --test-certs) test_certs=1 ;;
    --server-name) [ $# -ge 2 ] || usage; server_names+=("$2"); shift ;;
    --server-name=*) server_names+=("${1#*=}") ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift ;;
    --days=*) days=${1#*=} ;;
    -h|--help) usage 0 ;;
    -*) echo "make-dev-pki: unknown option $1" >&2; usage ;;
    *) if [ -z "$out" ]; then out=$1; else ids+=("$1"); fi ;;
  esac
  shift
done
[ -n "$out" ] || usage
[[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "make-dev-pki: --days must be 1..99999" >&2; exit 2; }
if [ ${#ids[@]} -eq 0 ]; then
  ids=(H3308000000 H3308000001 H3308000002 C3302130003 P3308000006 P3308000007)
fi
for id in "${ids[@]}"; do
  # The gateway's rule for an institution id (gateway/authenticator.h).
  [[ "$id" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] ||
    { echo "make-dev-pki: \"$id\" is not an institution id (1-64 of A-Z a-z 0-9 _ . -)" >&2; exit 2; }
  case "$id" in ca|server|ca.key|server.key) echo "make-dev-pki: \"$id\" is a reserved name" >&2; exit 2 ;; esac
done
command -v openssl >/dev/null || { echo "make-dev-pki: openssl is not installed" >&2; exit 1; }

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
CNF
export PKI_WORK="$work" PKI_ID=unused
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
  new_key "$dir/ca.key.pem"
  ossl req -x509 -new -config "$work/openssl.cnf" -key "$dir/ca.key.pem" -sha256 -days 3650 \
    -subj "/O=medsettle development/CN=$name" -extensions ca_ext -out "$dir/ca.pem"
  chmod 644 "$dir/ca.pem"
  made made "$dir/ca.pem"
}

# issue CA_DIR OUT_BASE SUBJECT EXTENSIONS [past]: OUT_BASE.pem and OUT_BASE.key.pem,
# kept when they exist and verify against CA_DIR/ca.pem (unless --force).
issue() {
  local ca_dir=$1 base=$2 subject=$3 ext=$4 past=${5:-}
  if [ "$force" = 0 ] && [ -s "$base.pem" ] && [ -s "$base.key.pem" ] &&
     { [ -n "$past" ] || openssl verify -CAfile "$ca_dir/ca.pem" "$base.pem" >/dev/null 2>&1; }; then
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

echo "make-dev-pki: $out"
make_ca "$out" "medsettle development CA"
issue "$out" "$out/server" "/O=medsettle development/CN=medsettle-gateway" server_ext
for id in "${ids[@]}"; do
  PKI_ID=$id issue "$out" "$out/$id" "/O=medsettle development/CN=$id" client_ext
done
if [ "$test_certs" = 1 ]; then
  make_ca "$out/other-ca" "another CA (tests)"
  mkdir -p "$out/expired" "$out/cn-only"
  for id in "${ids[@]}"; do
    PKI_ID=$id issue "$out/other-ca" "$out/other-ca/$id" "/O=medsettle development/CN=$id" client_ext
    PKI_ID=$id issue "$out" "$out/expired/$id" "/O=medsettle development/CN=$id" client_ext past
    issue "$out" "$out/cn-only/$id" "/O=medsettle development/CN=$id" client_cn_only_ext
  done
fi
echo "make-dev-pki: server certificate for ${server_names[*]}; institutions ${ids[*]}"
