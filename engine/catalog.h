// The medical-insurance catalog (医保目录): per item code, its class, the
// class-B pre-self-pay ratio, an optional unit price cap and the TCM flag.
// Parsed from CSV text `code,name,class,selfpay_ratio_bp,price_cap_cents,tcm`
// (header required; empty price cap = none; tcm 0/1). Immutable after
// parsing; safe to share between threads.
#ifndef MEDSETTLE_ENGINE_CATALOG_H_
#define MEDSETTLE_ENGINE_CATALOG_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/money.h"
#include "engine/types.h"

namespace medsettle::engine {

struct CatalogItem {
  std::string code;
  std::string name;
  ItemClass item_class = ItemClass::kUnspecified;  // kA, kB or kC
  BasisPoints selfpay_ratio_bp = 0;                // class B only; 0 otherwise
  std::optional<Cents> price_cap_cents;            // per unit
  bool tcm = false;  // 中药饮片 / 中成药 / 医院制剂
};

class Catalog {
 public:
  Catalog() = default;

  // Parses CSV text. Errors are INVALID_ARGUMENT (reason
  // CATALOG_FILE_INVALID) naming `file_name`, the line and the column.
  static absl::StatusOr<Catalog> Parse(std::string_view file_name,
                                       std::string_view csv_text);

  // nullptr when the code is not in the catalog.
  const CatalogItem* Find(std::string_view code) const;
  size_t size() const { return items_.size(); }

 private:
  absl::flat_hash_map<std::string, CatalogItem> items_;
};

}  // namespace medsettle::engine

#endif  // MEDSETTLE_ENGINE_CATALOG_H_
