// The classification cache: LRU over exact and literal-free keys.
#include "core/route/cache.h"

#include <string>
#include <string_view>
#include <utility>

#include "core/base/check.h"
#include "core/route/lexer.h"

namespace switchyard::route {
namespace {

constexpr char kMarker = '\x01';
// A digit run of at most this many digits always lexes as an integer (it fits in int32);
// a longer one may be a numeric, so it stays in the key.
constexpr size_t kBlankDigitsMax = 9;

// Whether a classification holds for every text with the same NormalizedKey.
bool LiteralFree(const Classification& classification) {
  const QueryInfo& info = classification.info;
  if (classification.depends_on_literals || info.parse_error) return false;
  for (const StatementInfo& statement : info.statements) {
    if (!statement.effects.empty() || statement.txn != TxnControl::kNone ||
        statement.transaction_local) {
      return false;
    }
  }
  return true;
}

size_t InfoBytes(const QueryInfo& info) {
  size_t bytes = sizeof(QueryInfo) + info.statements.size() * sizeof(StatementInfo);
  for (const StatementInfo& statement : info.statements) {
    bytes += statement.cursor.size();
    for (const SessionEffect& effect : statement.effects) {
      bytes += sizeof(SessionEffect) + effect.name.size() + effect.value.size();
    }
  }
  return bytes;
}

}  // namespace

std::string NormalizedKey(std::string_view sql) {
  if (sql.find(kMarker) != std::string_view::npos || sql.find('\0') != std::string_view::npos) {
    return "";
  }
  std::string key;
  key.reserve(sql.size() + 2);
  if (HasPrimaryHint(sql)) key.append({kMarker, 'H'});
  for (size_t pos = 0; pos < sql.size();) {
    const Token token = NextToken(sql, pos);
    pos = token.end;
    const std::string_view text = sql.substr(token.begin, token.end - token.begin);
    switch (token.kind) {
      case TokenKind::kUnterminated:
      case TokenKind::kPrefixedString:
        return "";
      case TokenKind::kComment:
        key.append({kMarker, text[0] == '-' ? 'L' : 'C'});
        break;
      case TokenKind::kString:
        key.append({kMarker, 'S'});
        break;
      case TokenKind::kDollarString:
        key.append({kMarker, 'D'});
        break;
      case TokenKind::kDigits:
        if (text.size() <= kBlankDigitsMax) {
          key.append({kMarker, 'N'});
        } else {
          key.append(text);
        }
        break;
      default:
        key.append(text);
        break;
    }
  }
  return key;
}

ClassificationCache::ClassificationCache(ClassificationCacheOptions options) : options_(options) {
  CHECK_GT(options_.entries_max, 0u);
  CHECK_GT(options_.bytes_max, 0u);
}

const QueryInfo* ClassificationCache::Find(Map& map, std::string_view key) {
  auto it = map.find(key);
  if (it == map.end()) return nullptr;
  const auto entry = it->second;
  if (entry->generation != generation_) {
    Erase(entry);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, entry);
  return &entry->info;
}

void ClassificationCache::Erase(std::list<Entry>::iterator entry) {
  Map& map = entry->normalized ? normalized_ : exact_;
  CHECK_EQ(map.erase(std::string_view(entry->key)), 1u);
  CHECK_LE(entry->bytes, bytes_);
  bytes_ -= entry->bytes;
  lru_.erase(entry);
}

const QueryInfo& ClassificationCache::Insert(std::string key, bool normalized, QueryInfo info) {
  const size_t entry_bytes = key.size() + InfoBytes(info);
  while (!lru_.empty() &&
         (lru_.size() >= options_.entries_max || bytes_ + entry_bytes > options_.bytes_max)) {
    Erase(std::prev(lru_.end()));
    ++stats_.evictions;
  }
  lru_.push_front(Entry{.key = std::move(key),
                        .normalized = normalized,
                        .generation = generation_,
                        .bytes = entry_bytes,
                        .info = std::move(info)});
  bytes_ += entry_bytes;
  Map& map = normalized ? normalized_ : exact_;
  const bool inserted = map.emplace(std::string_view(lru_.front().key), lru_.begin()).second;
  CHECK(inserted) << "a key cached twice";
  return lru_.front().info;
}

const QueryInfo& ClassificationCache::Classify(std::string_view sql,
                                               const FunctionVolatility& functions) {
  if (sql.size() > options_.statement_bytes_max) {
    ++stats_.uncached;
    uncached_ = ClassifyDetailed(sql, functions).info;
    return uncached_;
  }
  if (const QueryInfo* hit = Find(exact_, sql)) {
    ++stats_.exact_hits;
    return *hit;
  }
  std::string key = NormalizedKey(sql);
  if (!key.empty()) {
    if (const QueryInfo* hit = Find(normalized_, key)) {
      ++stats_.normalized_hits;
      return *hit;
    }
  }
  ++stats_.misses;
  Classification classification = ClassifyDetailed(sql, functions);
  // A literal-free classification is kept only under the normalized key: the exact text of a
  // statement whose literals change would never be asked for again.
  if (!key.empty() && LiteralFree(classification)) {
    return Insert(std::move(key), /*normalized=*/true, std::move(classification.info));
  }
  return Insert(std::string(sql), /*normalized=*/false, std::move(classification.info));
}

}  // namespace switchyard::route
