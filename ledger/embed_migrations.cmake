# Writes the ledger's migrations (ledger/migrations/NNNN_<name>.sql) into a
# C++ source file, with each file's SHA-256, so the library carries its
# schema (ledger/migrations.h: EmbeddedMigrations). Run at build time:
#   cmake -DMIGRATIONS_DIR=<dir> -DOUTPUT=<file.cc> -P embed_migrations.cmake
# Refuses a file name that is not NNNN_<lowercase name>.sql and versions
# that are not 1, 2, 3, … without gaps.
cmake_minimum_required(VERSION 3.25)

file(GLOB files RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT files)

set(body "")
set(table "")
set(expected 1)
foreach(f IN LISTS files)
  if(NOT f MATCHES "^([0-9][0-9][0-9][0-9])_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "ledger migration ${f}: the name must be NNNN_<lowercase name>.sql")
  endif()
  set(name "${CMAKE_MATCH_2}")
  math(EXPR version "1${CMAKE_MATCH_1} - 10000")  # no octal surprises from leading zeros
  if(NOT version EQUAL expected)
    message(FATAL_ERROR "ledger migration ${f}: expected version ${expected} (no gaps, from 0001)")
  endif()
  math(EXPR expected "${expected} + 1")

  file(SHA256 "${MIGRATIONS_DIR}/${f}" digest)
  file(READ "${MIGRATIONS_DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  # Every byte as \xNN, 32 bytes per line: exact bytes whatever the file holds.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${hex}")
  string(REGEX REPLACE "((\\\\x[0-9a-f][0-9a-f]){32})" "\\1\"\n    \"" escaped "${escaped}")
  string(APPEND body "// ${f}\nconstexpr char kMigration${version}[] =\n    \"${escaped}\";\n")
  string(APPEND table
    "      {${version}, \"${name}\", std::string_view(kMigration${version}, ${size}),\n"
    "       \"${digest}\"},\n")
endforeach()

set(content "// Generated from ledger/migrations/*.sql by ledger/embed_migrations.cmake.
// Do not edit: edit (or rather add) a migration file.
#include <string_view>
#include <vector>

#include \"ledger/migrations.h\"

namespace medsettle::ledger {
namespace {

${body}
}  // namespace

const std::vector<Migration>& EmbeddedMigrations() {
  static const std::vector<Migration> kAll = {
${table}  };
  return kAll;
}

}  // namespace medsettle::ledger
")

# Only touch the output when it changes (no needless recompiles).
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
