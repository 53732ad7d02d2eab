// A bounded cache of classifications (DESIGN.md section 5: "Classifications are cached by
// statement text"), keyed by the exact text and, for classifications that cannot depend on the
// values of literals, by the text with its literals blanked out (NormalizedKey): pgbench -M
// simple and most ORMs send the same statement with new numbers every time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "core/route/classifier.h"
#include "core/route/functions.h"
#include "core/route/statement.h"

namespace switchyard::route {

// `sql` with each plain string literal ('...' and its continuations), dollar-quoted string and
// digit run outside names (up to 9 digits, so that an integer literal stays an integer) replaced
// by a placeholder, and each comment by a marker. Everything else is kept byte for byte, white
// space included, and a leading `/* switchyard: primary */` hint is marked at the front.
//
// Two texts with the same key differ only inside the blanked literals and comments, so they
// tokenize alike and parse to the same tree shape. Returns "" (no key) when that cannot be
// promised cheaply: the text holds the placeholder byte (0x01) or a NUL, a literal, quoted name
// or comment never ends, or it has an E'', B'', X'', N'' or U&'' literal (kept as is would do,
// but the lexer validates their contents, so a different value could be a syntax error).
std::string NormalizedKey(std::string_view sql);

struct ClassificationCacheOptions {
  size_t entries_max = 4096;
  // Texts longer than this are classified every time (an ORM's largest statements are a few
  // KiB; bulk INSERTs are longer and never repeat).
  size_t statement_bytes_max = 16 << 10;
  // Bytes of keys and effects held, at most.
  size_t bytes_max = size_t{16} << 20;
};

class ClassificationCache {
 public:
  struct Stats {
    uint64_t exact_hits = 0;
    uint64_t normalized_hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
    uint64_t uncached = 0;  // too long to keep
  };

  explicit ClassificationCache(ClassificationCacheOptions options = {});

  // The classification of `sql`: cached, or computed with `functions` and stored. The reference
  // is valid until the next call on this cache.
  const QueryInfo& Classify(std::string_view sql, const FunctionVolatility& functions);

  // After function volatility changed (invalidates_functions, a reload of pg_proc): every entry
  // classified before is stale.
  void Invalidate() { ++generation_; }

  size_t size() const { return lru_.size(); }
  size_t bytes() const { return bytes_; }
  uint64_t generation() const { return generation_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    std::string key;
    bool normalized;
    uint64_t generation;
    size_t bytes;
    QueryInfo info;
  };
  using Map = absl::flat_hash_map<std::string_view, std::list<Entry>::iterator>;

  // The entry under `key`, moved to the front, or nullptr (a stale one is dropped).
  const QueryInfo* Find(Map& map, std::string_view key);
  const QueryInfo& Insert(std::string key, bool normalized, QueryInfo info);
  void Erase(std::list<Entry>::iterator entry);

  ClassificationCacheOptions options_;
  // Most recently used first. The maps' keys view the entries' own strings.
  std::list<Entry> lru_;
  Map exact_;
  Map normalized_;
  size_t bytes_ = 0;
  uint64_t generation_ = 0;
  Stats stats_;
  QueryInfo uncached_;
};

}  // namespace switchyard::route
