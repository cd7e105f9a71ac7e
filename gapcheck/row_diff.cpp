// Row-level diff by primary key between primary and standby: segment counts and hash sums computed
// in SQL on both sides at once, descending only into segments that differ, fetching only small
// ones.
#include "gapcheck/row_diff.h"

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/postgres.h"

namespace lifeline::gapcheck {
namespace {

using Clock = std::chrono::steady_clock;
__extension__ typedef unsigned __int128 U128;

// A descent that has not converged by then has a bug; each level shrinks a segment N-fold.
constexpr int kMaxLevels = 96;
// Rows (per side) one fetch statement may return: bounds the memory of a fetch.
constexpr int64_t kFetchBatchRows = 20'000;
// Segment parts per checksum or boundary statement (keeps statements a sane size).
constexpr size_t kPartsPerStatement = 256;
// Keys per statement when reading whole rows that differ.
constexpr size_t kKeysPerLookup = 1'000;
// Sampled keys per top-level segment when the source is large enough to sample.
constexpr double kSampleKeysPerSegment = 8;
// The top level reads every row whatever its fan-out, while a deeper level re-reads each
// differing segment: so the top is cut finer, into segments one level (and a little) above the
// fetch size, at most this many.
constexpr int64_t kMaxTopSegments = 4096;
constexpr double kSampleAboveRows = 50'000;

// An error that already carries its final Status (thrown inside a side's work).
struct DiffError : std::runtime_error {
  explicit DiffError(Status s) : std::runtime_error(s.message()), status(std::move(s)) {}
  Status status;
};

std::string Trimmed(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// "host H port P database D" from a conninfo: where a side is, never its password.
std::string DescribeServer(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts == nullptr) {
    if (err != nullptr) PQfreemem(err);
    return "(conninfo that does not parse)";
  }
  std::string host, hostaddr, port, dbname;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string k = o->keyword;
    if (k == "host") host = o->val;
    if (k == "hostaddr") hostaddr = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
  }
  PQconninfoFree(opts);
  if (host.empty()) host = hostaddr;
  if (host.empty()) {
    const char* h = std::getenv("PGHOST");
    host = h != nullptr ? h : "localhost (socket)";
  }
  if (port.empty()) {
    const char* p = std::getenv("PGPORT");
    port = p != nullptr ? p : "5432";
  }
  return "host " + host + " port " + port + (dbname.empty() ? "" : " database " + dbname);
}

// Bytes of the DataRow messages of a result: what the server sent for its rows.
uint64_t ResultBytes(const pqxx::result& r) {
  uint64_t bytes = 0;
  const auto cols = static_cast<uint64_t>(r.columns());
  for (const auto& row : r) {
    bytes += 7 + 4 * cols;
    for (const auto& f : row) bytes += f.is_null() ? 0 : f.size();
  }
  return bytes;
}

// Field `i` of a row (libpqxx indexes rows by its own size type).
pqxx::field At(const pqxx::row& row, size_t i) {
  return row[static_cast<pqxx::row::size_type>(i)];
}

// One database: its connection, its single read-only snapshot and what it has sent.
class Side {
 public:
  Side(std::string role, const std::string& conninfo, std::string password)
      : role_(std::move(role)),
        conninfo_(conninfo),
        password_(std::move(password)),
        where_(DescribeServer(conninfo)) {}

  const std::string& role() const { return role_; }
  std::string Label() const { return role_ + " database (" + where_ + ")"; }
  uint64_t bytes() const { return bytes_; }

  // Connects and opens one repeatable-read snapshot, so every level compares the same state.
  void Connect() {
    try {
      conn_ = std::make_unique<pqxx::connection>(ConnInfoWithPassword(conninfo_, password_));
    } catch (const std::exception& e) {
      throw DiffError(ClassifyPostgresError(
          e.what(), "cannot connect to the " + role_ + " database (" + where_ +
                        "); check that it runs and the --" + role_ + " conninfo"));
    }
    txn_ = std::make_unique<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>>(*conn_);
    // Both sides must render every value identically for their row hashes to agree.
    for (const char* set :
         {"SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, MDY'", "SET extra_float_digits = 3",
          "SET IntervalStyle = 'postgres'", "SET bytea_output = 'hex'", "SET lc_monetary = 'C'"}) {
      txn_->exec(set);
    }
    // Segment numbers are CASE expressions whose group count the planner cannot estimate: it
    // would sort whole rows rather than hash a few dozen groups. Ordered reads use the key index.
    txn_->exec("SET enable_sort = off");
  }

  // One statement (the extended protocol: never several statements in one string).
  pqxx::result Query(const std::string& sql) {
    pqxx::result r = txn_->exec_params(sql);
    bytes_ += ResultBytes(r);
    return r;
  }

  // Runs `work` against this side; any failure becomes a Status naming the side.
  template <typename F>
  Status Run(F&& work) {
    try {
      work(*this);
      return Status::Ok();
    } catch (const DiffError& e) {
      return e.status;
    } catch (...) {
      return StatusFromPostgresException(Label());
    }
  }

 private:
  std::string role_;
  std::string conninfo_;
  std::string password_;
  std::string where_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>> txn_;
  uint64_t bytes_ = 0;
};

struct Column {
  std::string name;
  std::string type;       // format_type without typmod, for casting literals
  int key_position = -1;  // 1-based position in the primary key, -1: not a key column
  bool collatable = false;
  std::string collation;  // collation, its provider, locale and version: equal means same order
};

struct TableShape {
  std::string qualified;  // "schema"."name", quoted
  char relkind = 'r';
  double reltuples = -1;
  std::vector<Column> columns;  // attnum order
  std::vector<Column> key;      // primary key order
};

// How the key space is cut: arithmetic on one integer or uuid column, or boundaries read from data.
enum class KeyKind { kInteger, kUuid, kData };

// A range of the key space: [lo, hi) by key tuples, or [lo_num, last_num] for arithmetic keys.
struct Segment {
  std::optional<std::vector<std::string>> lo;  // inclusive; nullopt: open
  std::optional<std::vector<std::string>> hi;  // exclusive; nullopt: open (data keys)
  U128 lo_num = 0;
  U128 last_num = 0;  // inclusive (arithmetic keys); never overflows at the type's top
  bool root = false;
  std::vector<int> path;  // child indexes from the top: orders the report by key
  int64_t rows[2] = {0, 0};
  std::string sum[2];
  bool Differs() const { return rows[0] != rows[1] || sum[0] != sum[1]; }
  int64_t MaxRows() const { return std::max(rows[0], rows[1]); }
};

struct Found {
  std::vector<int> path;
  int64_t rank = 0;
  RowDifference row;
};

bool FoundBefore(const Found& a, const Found& b) {
  if (a.path != b.path) return a.path < b.path;
  return a.rank < b.rank;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string DisplayKey(const std::vector<std::string>& key) {
  if (key.size() == 1) return key[0];
  return "(" + JoinNames(key) + ")";
}

U128 ParseOrdinal(KeyKind kind, const std::string& text) {
  if (kind == KeyKind::kInteger) {
    const int64_t v = std::stoll(text);
    return static_cast<U128>(static_cast<__int128>(v) + (static_cast<__int128>(1) << 63));
  }
  U128 v = 0;
  for (char c : text) {
    if (c == '-') continue;
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10;
    v = (v << 4) | static_cast<U128>(d);
  }
  return v;
}

std::string RenderOrdinal(KeyKind kind, U128 v) {
  if (kind == KeyKind::kInteger) {
    return std::to_string(
        static_cast<int64_t>(static_cast<__int128>(v) - (static_cast<__int128>(1) << 63)));
  }
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (int i = 31; i >= 0; --i) {
    out += kHex[static_cast<int>((v >> (4 * i)) & 0xf)];
    if (i == 24 || i == 20 || i == 16 || i == 12) out += '-';
  }
  return out;
}

class RowDiff {
 public:
  explicit RowDiff(const RowDiffOptions& o)
      : options_(o),
        sides_{Side("source", o.source, o.source_password),
               Side("target", o.target, o.target_password)} {}

  Status Run(RowDiffReport* report);
  int64_t rows_fetched() const { return rows_fetched_; }
  uint64_t bytes_received() const { return sides_[0].bytes() + sides_[1].bytes(); }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  // Keys with their row numbers in key order, as read from one side.
  using Bounds = std::vector<std::pair<int64_t, std::vector<std::string>>>;

  int Index(const Side& side) const { return &side == &sides_[0] ? 0 : 1; }

  // Runs one piece of work on each side at once (the target's on its own thread).
  Status Both(const std::function<void(Side&)>& source_work,
              const std::function<void(Side&)>& target_work) {
    Status target_status;
    std::thread t([&] { target_status = sides_[1].Run(target_work); });
    Status source_status = sides_[0].Run(source_work);
    t.join();
    if (!source_status.ok()) return source_status;
    return target_status;
  }
  Status Both(const std::function<void(Side&)>& work) { return Both(work, work); }

  TableShape Describe(Side& side);
  Status CheckShapes(const TableShape& source, const TableShape& target);
  void ValidateWhere(Side& side);
  Status TopBoundaries(Segment* root);

  std::string Filter() const { return options_.where.empty() ? "" : "(" + options_.where + ")"; }
  std::string KeyExprList() const;
  std::string KeyTextList() const;
  std::string Literal(size_t key_index, const std::string& text) const {
    return QuoteLiteral(text) + "::" + shape_.key[key_index].type;
  }
  std::string KeyTuple(const std::vector<std::string>& texts) const;
  std::string KeyCompare(const char* op, const std::vector<std::string>& texts) const;
  std::string RangeCondition(const Segment& s) const;
  std::string WhereClause(const Segment& s) const;
  std::string ChildSearch(const std::vector<Segment>& children, size_t first, size_t last) const;
  std::string SegmentNumber(const std::vector<Segment>& children) const;
  std::vector<std::string> BoundOf(const Segment& child) const;

  Status Split(std::vector<Segment>& parents, std::vector<std::vector<Segment>>* children);
  Status SplitRoot(const Segment& root, std::vector<Segment>* kids);
  void ReadBound(const pqxx::row& row, size_t first, Bounds* into) const;
  std::vector<Segment> Children(const Segment& parent, Bounds bounds) const;
  std::vector<Segment> SplitArithmetic(const Segment& parent, int64_t fan_out) const;
  int64_t FanOut(const Segment& s) const {
    return s.root ? top_segments_ : options_.segments_per_level;
  }
  size_t SummaryOf(size_t top) const {
    return static_cast<size_t>(static_cast<int64_t>(top) * summaries_ / top_segments_);
  }
  Status Checksum(std::vector<Segment>& parents, std::vector<std::vector<Segment>>& children);
  Status Fetch(const std::vector<Segment>& segments);
  Status CompareRows(const std::vector<std::pair<std::vector<int>, int64_t>>& where,
                     const std::vector<std::vector<std::string>>& keys);

  const RowDiffOptions& options_;
  Side sides_[2];
  TableShape shape_;
  KeyKind kind_ = KeyKind::kData;
  std::vector<std::string> key_exprs_;  // t."k" or t."k" COLLATE "C"
  std::string hash_expr_;
  U128 type_max_ = 0;  // largest ordinal of an arithmetic key's type
  std::vector<Found> missing_, extra_, different_;
  std::vector<std::string> notes_;
  int64_t rows_fetched_ = 0;
  char relkind_[2] = {'r', 'r'};
  double reltuples_[2] = {-1, -1};
  int64_t root_rows_[2] = {0, 0};  // when the whole table was fetched at once (tiny tables)
  int64_t top_segments_ = 32;
  int64_t summaries_ = 32;  // top segments are reported in this many consecutive groups
};

TableShape RowDiff::Describe(Side& side) {
  TableShape shape;
  pqxx::result rel;
  try {
    rel = side.Query(
        "SELECT c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind, "
        "c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(" +
        QuoteLiteral(options_.table) + ")");
  } catch (const pqxx::sql_error& e) {
    throw DiffError(Status::InvalidArgument("table name \"" + options_.table +
                                            "\" does not parse on the " + side.role() + ": " +
                                            Trimmed(e.what())));
  }
  if (rel.empty()) {
    throw DiffError(Status::NotFound("table " + options_.table + " not found on the " +
                                     side.Label() + "; check --table and the database name"));
  }
  const std::string oid = rel[0][0].c_str();
  shape.qualified = rel[0][1].c_str();
  shape.relkind = rel[0][2].c_str()[0];
  shape.reltuples = rel[0][3].as<double>();
  // The collation text names provider, locale and library version: equal text, equal ordering.
  pqxx::result cols = side.Query(
      "SELECT a.attname, format_type(a.atttypid, NULL), "
      "coalesce((SELECT k.ord FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord) "
      "  WHERE i.indrelid = a.attrelid AND i.indisprimary AND k.attnum = a.attnum), -1), "
      "a.attcollation <> 0, "
      "CASE WHEN a.attcollation = 0 THEN '' "
      "WHEN a.attcollation = 100 THEN (SELECT 'database default ' || d.datlocprovider::text || ' ' "
      "|| "
      "  d.datcollate || coalesce(' ' || d.daticulocale, '') || ' version ' || "
      "  coalesce(pg_database_collation_actual_version(d.oid), 'none') FROM pg_database d "
      "  WHERE d.datname = current_database()) "
      "ELSE (SELECT quote_ident(c.collname) || ' ' || c.collprovider::text || ' ' || "
      "  coalesce(c.collcollate, c.colliculocale, '') || ' version ' || "
      "  coalesce(pg_collation_actual_version(c.oid), 'none') FROM pg_collation c "
      "  WHERE c.oid = a.attcollation) END "
      "FROM pg_attribute a WHERE a.attrelid = " +
      oid + " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum");
  for (const auto& row : cols) {
    Column c;
    c.name = row[0].c_str();
    c.type = row[1].c_str();
    c.key_position = row[2].as<int>();
    c.collatable = std::string(row[3].c_str()) == "t";
    c.collation = row[4].is_null() ? "" : row[4].c_str();
    shape.columns.push_back(c);
    if (c.key_position > 0) shape.key.push_back(c);
  }
  std::sort(shape.key.begin(), shape.key.end(),
            [](const Column& a, const Column& b) { return a.key_position < b.key_position; });
  if (shape.key.empty()) {
    throw DiffError(Status::InvalidArgument(
        "table " + options_.table + " has no primary key on the " + side.Label() +
        "; rows can only be matched by key: add a primary key (ALTER TABLE " + shape.qualified +
        " ADD PRIMARY KEY (...)) or compare the table with the buckets report"));
  }
  return shape;
}

Status RowDiff::CheckShapes(const TableShape& source, const TableShape& target) {
  std::vector<std::string> source_key, target_key;
  for (const auto& k : source.key) source_key.push_back(k.name + " " + k.type);
  for (const auto& k : target.key) target_key.push_back(k.name + " " + k.type);
  if (source_key != target_key) {
    return Status::InvalidArgument("the primary key of " + options_.table +
                                   " differs between the sides: source (" + JoinNames(source_key) +
                                   "), target (" + JoinNames(target_key) +
                                   "); make the schemas match first");
  }
  std::set<std::string> on_source, on_target;
  for (const auto& c : source.columns) on_source.insert(c.name);
  for (const auto& c : target.columns) on_target.insert(c.name);
  std::vector<std::string> only_source, only_target;
  for (const auto& n : on_source) {
    if (on_target.count(n) == 0) only_source.push_back(n);
  }
  for (const auto& n : on_target) {
    if (on_source.count(n) == 0) only_target.push_back(n);
  }
  if (!only_source.empty() || !only_target.empty()) {
    std::string msg = "the columns of " + options_.table + " differ between the sides:";
    if (!only_source.empty()) msg += " only on the source: " + JoinNames(only_source) + ";";
    if (!only_target.empty()) msg += " only on the target: " + JoinNames(only_target) + ";";
    return Status::InvalidArgument(msg + " make the schemas match first");
  }
  return Status::Ok();
}

void RowDiff::ValidateWhere(Side& side) {
  try {
    side.Query("SELECT 1 FROM " + shape_.qualified + " t WHERE " + Filter() + " LIMIT 0");
  } catch (const pqxx::sql_error& e) {
    throw DiffError(Status::InvalidArgument("--where \"" + options_.where + "\" on the " +
                                            side.role() + ": " + Trimmed(e.what())));
  }
}

std::string RowDiff::KeyExprList() const {
  return JoinNames(key_exprs_);
}

std::string RowDiff::KeyTextList() const {
  std::string out;
  for (const auto& k : shape_.key)
    out += (out.empty() ? "" : ", ") + ("t." + QuoteIdent(k.name)) + "::text";
  return out;
}

std::string RowDiff::KeyTuple(const std::vector<std::string>& texts) const {
  std::string out;
  for (size_t i = 0; i < texts.size(); ++i) out += (i == 0 ? "" : ", ") + Literal(i, texts[i]);
  return texts.size() == 1 ? out : "(" + out + ")";
}

std::string RowDiff::KeyCompare(const char* op, const std::vector<std::string>& texts) const {
  const std::string lhs = key_exprs_.size() == 1 ? key_exprs_[0] : "(" + KeyExprList() + ")";
  return lhs + " " + op + " " + KeyTuple(texts);
}

std::vector<std::string> RowDiff::BoundOf(const Segment& child) const {
  if (kind_ == KeyKind::kData) return *child.lo;
  return {RenderOrdinal(kind_, child.lo_num)};
}

std::string RowDiff::RangeCondition(const Segment& s) const {
  if (s.root) return "";
  std::vector<std::string> parts;
  if (kind_ == KeyKind::kData) {
    if (s.lo) parts.push_back(KeyCompare(">=", *s.lo));
    if (s.hi) parts.push_back(KeyCompare("<", *s.hi));
  } else {
    parts.push_back(KeyCompare(">=", {RenderOrdinal(kind_, s.lo_num)}));
    if (s.last_num < type_max_)
      parts.push_back(KeyCompare("<=", {RenderOrdinal(kind_, s.last_num)}));
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " AND ") + p;
  return out;
}

std::string RowDiff::WhereClause(const Segment& s) const {
  std::string range = RangeCondition(s);
  std::string filter = Filter();
  if (range.empty() && filter.empty()) return "";
  if (range.empty()) return " WHERE " + filter;
  if (filter.empty()) return " WHERE " + range;
  return " WHERE " + range + " AND " + filter;
}

// A binary search over the children's lower bounds: the index of the child holding the row.
std::string RowDiff::ChildSearch(const std::vector<Segment>& children, size_t first,
                                 size_t last) const {
  if (first == last) return std::to_string(first);
  const size_t mid = (first + last + 1) / 2;
  return "CASE WHEN " + KeyCompare("<", BoundOf(children[mid])) + " THEN " +
         ChildSearch(children, first, mid - 1) + " ELSE " + ChildSearch(children, mid, last) +
         " END";
}

// Which child holds the row. One key column: width_bucket over the children's lower bounds, a
// single call the planner prices cheaply, so it keeps hashing and aggregation in parallel workers
// (a large CASE tree makes it ship whole rows to the leader). Several key columns: a CASE tree
// of row-value comparisons (width_bucket on records loses the columns' collations).
std::string RowDiff::SegmentNumber(const std::vector<Segment>& children) const {
  if (key_exprs_.size() > 1) return ChildSearch(children, 0, children.size() - 1);
  if (children.size() == 1) return "0";
  std::string bounds;
  for (size_t i = 1; i < children.size(); ++i) {
    bounds += (i == 1 ? "" : ", ") + Literal(0, BoundOf(children[i])[0]);
  }
  return "width_bucket(" + key_exprs_[0] + ", ARRAY[" + bounds + "])";
}

std::vector<Segment> RowDiff::SplitArithmetic(const Segment& parent, int64_t fan_out) const {
  const U128 n = static_cast<U128>(fan_out);
  const U128 span = parent.last_num - parent.lo_num;  // one less than the count of values
  std::vector<Segment> out;
  if (span == 0) return out;
  const U128 width = span / n + 1;
  for (U128 offset = 0;; offset += width) {
    Segment c;
    c.lo_num = parent.lo_num + offset;
    c.last_num = (span - offset < width) ? parent.last_num : c.lo_num + width - 1;
    c.path = parent.path;
    c.path.push_back(static_cast<int>(out.size()));
    out.push_back(c);
    if (c.last_num == parent.last_num) break;
  }
  return out;
}

Status RowDiff::TopBoundaries(Segment* root) {
  root->root = true;
  if (kind_ != KeyKind::kData) {
    std::optional<U128> lo, last;
    std::mutex mu;
    Status st = Both([&](Side& side) {
      // Both ends through the primary key (uuid has no min/max aggregate).
      const std::string from = " FROM " + shape_.qualified + " t" + WhereClause(*root);
      pqxx::result r =
          side.Query("SELECT (SELECT " + key_exprs_[0] + "::text" + from + " ORDER BY " +
                     key_exprs_[0] + " LIMIT 1), (SELECT " + key_exprs_[0] + "::text" + from +
                     " ORDER BY " + key_exprs_[0] + " DESC LIMIT 1)");
      if (r[0][0].is_null()) return;
      const U128 a = ParseOrdinal(kind_, r[0][0].c_str());
      const U128 b = ParseOrdinal(kind_, r[0][1].c_str());
      std::lock_guard<std::mutex> lock(mu);
      lo = lo ? std::min(*lo, a) : a;
      last = last ? std::max(*last, b) : b;
    });
    LIFELINE_RETURN_IF_ERROR(st);
    if (!lo) return Status::NotFound("");  // both sides empty
    root->lo_num = *lo;
    root->last_num = *last;
    return Status::Ok();
  }
  return Status::Ok();
}

// Children of each parent: arithmetic cuts, or keys at even row intervals of the side that holds
// more rows in the parent (read in key order through the primary key, one round trip per level).
Status RowDiff::Split(std::vector<Segment>& parents, std::vector<std::vector<Segment>>* children) {
  children->assign(parents.size(), {});
  if (kind_ != KeyKind::kData) {
    for (size_t i = 0; i < parents.size(); ++i)
      (*children)[i] = SplitArithmetic(parents[i], FanOut(parents[i]));
    return Status::Ok();
  }
  if (parents.size() == 1 && parents[0].root) return SplitRoot(parents[0], &(*children)[0]);
  const int64_t n = options_.segments_per_level;
  // Each part reads one parent's boundaries on the side that holds more of its rows.
  std::vector<std::string> parts[2];
  std::vector<size_t> part_parent[2];
  for (size_t i = 0; i < parents.size(); ++i) {
    const Segment& p = parents[i];
    const int side = p.rows[1] > p.rows[0] ? 1 : 0;
    const std::string cut = std::to_string(std::max<int64_t>(1, (p.MaxRows() + n - 1) / n));
    parts[side].push_back("SELECT " + std::to_string(part_parent[side].size()) +
                          " AS p, s.* FROM (SELECT " + KeyTextList() +
                          ", row_number() OVER (ORDER BY " + KeyExprList() + ") AS rn FROM " +
                          shape_.qualified + " t" + WhereClause(p) +
                          ") s WHERE rn > 1 AND (rn - 1) % " + cut + " = 0");
    part_parent[side].push_back(i);
  }
  std::vector<Bounds> bounds(parents.size());
  auto work = [&](Side& side) {
    const int s = Index(side);
    for (size_t from = 0; from < parts[s].size(); from += kPartsPerStatement) {
      std::string sql;
      const size_t to = std::min(parts[s].size(), from + kPartsPerStatement);
      for (size_t j = from; j < to; ++j) {
        sql += (sql.empty() ? "(" : " UNION ALL (") + parts[s][j] + ")";
      }
      pqxx::result r = side.Query(sql);
      for (const auto& row : r) ReadBound(row, 1, &bounds[part_parent[s][row[0].as<size_t>()]]);
    }
  };
  LIFELINE_RETURN_IF_ERROR(Both(work));
  for (size_t i = 0; i < parents.size(); ++i) (*children)[i] = Children(parents[i], bounds[i]);
  return Status::Ok();
}

void RowDiff::ReadBound(const pqxx::row& row, size_t first, Bounds* into) const {
  std::vector<std::string> key;
  for (size_t k = 0; k < shape_.key.size(); ++k) key.push_back(At(row, first + k).c_str());
  into->emplace_back(At(row, first + shape_.key.size()).as<int64_t>(), std::move(key));
}

// Children of `parent` cut at `bounds` (keys with their row numbers; sorted here by row number,
// since only the database knows the key's ordering). No bounds: the parent cannot be cut.
std::vector<Segment> RowDiff::Children(const Segment& parent, Bounds bounds) const {
  std::vector<Segment> kids;
  if (bounds.empty()) return kids;
  std::sort(bounds.begin(), bounds.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Segment first;
  first.lo = parent.lo;
  kids.push_back(first);
  for (auto& [rank, key] : bounds) {
    kids.back().hi = key;
    Segment next;
    next.lo = std::move(key);
    kids.push_back(std::move(next));
  }
  kids.back().hi = parent.hi;
  for (size_t j = 0; j < kids.size(); ++j) {
    kids[j].path = parent.path;
    kids[j].path.push_back(static_cast<int>(j));
  }
  return kids;
}

// The top level's boundaries: keys at even intervals of each side's rows, from a page sample when
// the table is large (cheap), else from every key. The source's are used unless it has none.
Status RowDiff::SplitRoot(const Segment& root, std::vector<Segment>* kids) {
  const std::string n = std::to_string(top_segments_);
  Bounds bounds[2];
  bool sampled = false;
  auto quantiles = [&](bool allow_sample) {
    return [&, allow_sample](Side& side) {
      const int s = Index(side);
      std::string sample;
      if (allow_sample && relkind_[s] == 'r' && reltuples_[s] > kSampleAboveRows) {
        double pct =
            100.0 * kSampleKeysPerSegment * static_cast<double>(top_segments_) / reltuples_[s];
        pct = std::clamp(pct, 0.01, 100.0);
        sample = " TABLESAMPLE SYSTEM (" + std::to_string(pct) + ") REPEATABLE (0)";
        sampled = true;
      }
      pqxx::result r = side.Query(
          "SELECT s.* FROM (SELECT " + KeyTextList() + ", row_number() OVER (ORDER BY " +
          KeyExprList() + ") AS rn, count(*) OVER () AS c FROM " + shape_.qualified + " t" +
          sample + WhereClause(root) + ") s WHERE rn > 1 AND (rn - 1) % greatest(1, ceil(c / " + n +
          "::numeric))::int8 = 0");
      bounds[s].clear();
      for (const auto& row : r) ReadBound(row, 0, &bounds[s]);
    };
  };
  LIFELINE_RETURN_IF_ERROR(Both(quantiles(true)));
  if (bounds[0].empty() && bounds[1].empty() && sampled) {
    // A selective --where can leave the sample empty while the table is not.
    LIFELINE_RETURN_IF_ERROR(Both(quantiles(false)));
  }
  *kids = Children(root, bounds[0].empty() ? std::move(bounds[1]) : std::move(bounds[0]));
  return Status::Ok();
}

// Count and hash sum of every child, grouped per parent: one statement per side (per batch).
Status RowDiff::Checksum(std::vector<Segment>& parents,
                         std::vector<std::vector<Segment>>& children) {
  std::vector<size_t> todo;
  for (size_t i = 0; i < parents.size(); ++i) {
    if (!children[i].empty()) todo.push_back(i);
  }
  for (size_t from = 0; from < todo.size(); from += kPartsPerStatement) {
    const size_t to = std::min(todo.size(), from + kPartsPerStatement);
    std::string sql;
    for (size_t j = from; j < to; ++j) {
      const size_t i = todo[j];
      sql += (sql.empty() ? "" : " UNION ALL ") +
             ("(SELECT " + std::to_string(j - from) + " AS p, " + SegmentNumber(children[i]) +
              " AS s, count(*), sum(" + hash_expr_ + ")::text FROM " + shape_.qualified + " t" +
              WhereClause(parents[i]) + " GROUP BY 2)");
    }
    auto work = [&](Side& side) {
      const int s = Index(side);
      pqxx::result r = side.Query(sql);
      for (const auto& row : r) {
        Segment& c = children[todo[from + row[0].as<size_t>()]][row[1].as<size_t>()];
        c.rows[s] = row[2].as<int64_t>();
        c.sum[s] = row[3].is_null() ? "" : row[3].c_str();
      }
    };
    LIFELINE_RETURN_IF_ERROR(Both(work));
  }
  return Status::Ok();
}

// Fetches key and row hash of every row of small differing segments on both sides and sorts them
// into missing, extra and changed; changed rows are then read whole to name the columns.
Status RowDiff::Fetch(const std::vector<Segment>& segments) {
  const size_t nkey = shape_.key.size();
  size_t from = 0;
  while (from < segments.size()) {
    size_t to = from;
    int64_t rows = 0;
    while (to < segments.size() &&
           (to == from || rows + segments[to].MaxRows() <= kFetchBatchRows)) {
      rows += segments[to].MaxRows();
      ++to;
    }
    std::string sql;
    for (size_t j = from; j < to; ++j) {
      sql += (sql.empty() ? "" : " UNION ALL ") +
             ("(SELECT " + std::to_string(j - from) + " AS p, row_number() OVER (ORDER BY " +
              KeyExprList() + ") AS rn, " + hash_expr_ + "::text AS h, " + KeyTextList() +
              " FROM " + shape_.qualified + " t" + WhereClause(segments[j]) + ")");
    }
    struct Seen {
      int64_t rank;
      std::string hash;
    };
    std::vector<std::map<std::vector<std::string>, Seen>> seen[2];
    seen[0].resize(to - from);
    seen[1].resize(to - from);
    int64_t fetched[2] = {0, 0};
    auto work = [&](Side& side) {
      const int s = Index(side);
      pqxx::result r = side.Query(sql);
      fetched[s] = static_cast<int64_t>(r.size());
      for (const auto& row : r) {
        std::vector<std::string> key;
        for (size_t k = 0; k < nkey; ++k) key.push_back(At(row, 3 + k).c_str());
        seen[s][row[0].as<size_t>()][std::move(key)] = Seen{row[1].as<int64_t>(), row[2].c_str()};
      }
    };
    LIFELINE_RETURN_IF_ERROR(Both(work));
    rows_fetched_ += fetched[0] + fetched[1];
    for (size_t j = 0; j < to - from; ++j) {
      if (!segments[from + j].root) continue;
      root_rows_[0] = static_cast<int64_t>(seen[0][j].size());
      root_rows_[1] = static_cast<int64_t>(seen[1][j].size());
    }
    std::vector<std::pair<std::vector<int>, int64_t>> changed_at;
    std::vector<std::vector<std::string>> changed;
    for (size_t j = 0; j < to - from; ++j) {
      const auto& path = segments[from + j].path;
      for (const auto& [key, row] : seen[0][j]) {
        auto it = seen[1][j].find(key);
        if (it == seen[1][j].end()) {
          missing_.push_back(Found{path, row.rank, RowDifference{key, {}}});
        } else if (it->second.hash != row.hash) {
          changed_at.emplace_back(path, row.rank);
          changed.push_back(key);
        }
      }
      for (const auto& [key, row] : seen[1][j]) {
        if (seen[0][j].count(key) == 0)
          extra_.push_back(Found{path, row.rank, RowDifference{key, {}}});
      }
    }
    LIFELINE_RETURN_IF_ERROR(CompareRows(changed_at, changed));
    from = to;
  }
  return Status::Ok();
}

Status RowDiff::CompareRows(const std::vector<std::pair<std::vector<int>, int64_t>>& where,
                            const std::vector<std::vector<std::string>>& keys) {
  const size_t nkey = shape_.key.size();
  std::string values;
  for (const auto& c : shape_.columns) values += ", t." + QuoteIdent(c.name) + "::text";
  std::string vnames, on_left, on_right;
  for (size_t k = 0; k < nkey; ++k) {
    vnames += (k == 0 ? "" : ", ") + ("x" + std::to_string(k));
    on_left += (k == 0 ? "" : ", ") + key_exprs_[k];
    on_right += (k == 0 ? "" : ", ") + ("v.x" + std::to_string(k));
  }
  for (size_t from = 0; from < keys.size(); from += kKeysPerLookup) {
    const size_t to = std::min(keys.size(), from + kKeysPerLookup);
    std::string list;
    for (size_t j = from; j < to; ++j) {
      std::string tuple;
      for (size_t k = 0; k < nkey; ++k) tuple += (k == 0 ? "" : ", ") + Literal(k, keys[j][k]);
      list += (j == from ? "(" : ", (") + tuple + ")";
    }
    const std::string sql = "SELECT " + KeyTextList() + values + " FROM " + shape_.qualified +
                            " t JOIN (VALUES " + list + ") AS v(" + vnames + ") ON (" + on_left +
                            ") = (" + on_right + ")";
    using Values = std::vector<std::optional<std::string>>;
    std::map<std::vector<std::string>, Values> rows[2];
    auto work = [&](Side& side) {
      const int s = Index(side);
      pqxx::result r = side.Query(sql);
      for (const auto& row : r) {
        std::vector<std::string> key;
        for (size_t k = 0; k < nkey; ++k) key.push_back(At(row, k).c_str());
        Values v;
        for (size_t c = 0; c < shape_.columns.size(); ++c) {
          const pqxx::field f = At(row, nkey + c);
          v.push_back(f.is_null() ? std::nullopt : std::optional<std::string>(f.c_str()));
        }
        rows[s][std::move(key)] = std::move(v);
      }
    };
    LIFELINE_RETURN_IF_ERROR(Both(work));
    rows_fetched_ += static_cast<int64_t>(rows[0].size() + rows[1].size());
    for (size_t j = from; j < to; ++j) {
      auto a = rows[0].find(keys[j]);
      auto b = rows[1].find(keys[j]);
      if (a == rows[0].end() || b == rows[1].end()) continue;  // gone from the snapshot: cannot be
      RowDifference d{keys[j], {}};
      for (size_t c = 0; c < shape_.columns.size(); ++c) {
        if (a->second[c] != b->second[c]) d.columns.push_back(shape_.columns[c].name);
      }
      if (!d.columns.empty()) different_.push_back(Found{where[j].first, where[j].second, d});
    }
  }
  return Status::Ok();
}

Status RowDiff::Run(RowDiffReport* report) {
  if (options_.segments_per_level < 2) {
    return Status::InvalidArgument("segments per level must be at least 2, not " +
                                   std::to_string(options_.segments_per_level));
  }
  if (options_.fetch_below_rows < 1) {
    return Status::InvalidArgument("fetch-below rows must be at least 1");
  }
  if (options_.row_hash != "hashtext" && options_.row_hash != "md5") {
    return Status::InvalidArgument("row hash \"" + options_.row_hash +
                                   "\" is not one of hashtext, md5");
  }
  LIFELINE_RETURN_IF_ERROR(Both([](Side& side) { side.Connect(); }));

  TableShape shapes[2];
  LIFELINE_RETURN_IF_ERROR(Both([&](Side& side) { shapes[Index(side)] = Describe(side); }));
  LIFELINE_RETURN_IF_ERROR(CheckShapes(shapes[0], shapes[1]));
  shape_ = shapes[0];
  for (int i = 0; i < 2; ++i) {
    relkind_[i] = shapes[i].relkind;
    reltuples_[i] = shapes[i].reltuples;
  }
  report->table = options_.table;
  for (const auto& k : shape_.key) report->key_columns.push_back(k.name);
  for (const auto& c : shape_.columns) report->columns.push_back(c.name);

  // Key ordering must be the same on both sides; a collation that differs in name, locale or
  // library version falls back to byte order (correct, but ranges no longer use the index).
  for (size_t k = 0; k < shape_.key.size(); ++k) {
    const Column& sk = shape_.key[k];
    std::string e = "t." + QuoteIdent(sk.name);
    const std::string& other = shapes[1].key[k].collation;
    if (sk.collatable && sk.collation != other) {
      e += " COLLATE \"C\"";
      notes_.push_back("key column " + sk.name +
                       " compared in byte order (COLLATE \"C\"): its "
                       "collation differs between the sides (source " +
                       sk.collation + ", target " + other +
                       "), so key ranges cannot use the primary key index");
    }
    key_exprs_.push_back(e);
  }
  std::string row = "ROW(";
  for (size_t c = 0; c < shape_.columns.size(); ++c) {
    row += (c == 0 ? "t." : ", t.") + QuoteIdent(shape_.columns[c].name);
  }
  row += ")::text";
  hash_expr_ = options_.row_hash == "md5" ? "('x' || left(md5(" + row + "), 16))::bit(64)::int8"
                                          : "hashtextextended((" + row + ") COLLATE \"C\", 0)";

  if (!options_.where.empty()) {
    LIFELINE_RETURN_IF_ERROR(Both([&](Side& side) { ValidateWhere(side); }));
  }

  kind_ = KeyKind::kData;
  if (shape_.key.size() == 1) {
    const std::string& t = shape_.key[0].type;
    if (t == "uuid") {
      kind_ = KeyKind::kUuid;
      type_max_ = ~static_cast<U128>(0);
    } else if (t == "smallint" || t == "integer" || t == "bigint") {
      kind_ = KeyKind::kInteger;
      const int bits = t == "smallint" ? 15 : t == "integer" ? 31 : 63;
      type_max_ = (static_cast<U128>(1) << 63) + ((static_cast<U128>(1) << bits) - 1);
    }
  }

  summaries_ = options_.segments_per_level;
  const double rows_estimate = std::max(reltuples_[0], reltuples_[1]);
  top_segments_ = options_.segments_per_level;
  if (rows_estimate > 0 && shape_.key.size() == 1) {
    const double cut = 8.0 * rows_estimate /
                       static_cast<double>(options_.fetch_below_rows * options_.segments_per_level);
    top_segments_ =
        std::clamp<int64_t>(static_cast<int64_t>(cut), options_.segments_per_level,
                            std::max<int64_t>(kMaxTopSegments, options_.segments_per_level));
  }
  Segment root;
  Status top = TopBoundaries(&root);
  if (top.code() == StatusCode::kNotFound) return Status::Ok();  // nothing on either side
  LIFELINE_RETURN_IF_ERROR(top);

  std::vector<Segment> differing{root};
  for (int level = 1;; ++level) {
    if (level > kMaxLevels) {
      return Status::Internal("row diff of " + options_.table + " did not converge after " +
                              std::to_string(kMaxLevels) + " levels");
    }
    std::vector<Segment> to_fetch, to_split;
    for (auto& s : differing) {
      if (!s.root && s.MaxRows() <= options_.fetch_below_rows) {
        to_fetch.push_back(std::move(s));
      } else {
        to_split.push_back(std::move(s));
      }
    }
    std::vector<std::vector<Segment>> children;
    LIFELINE_RETURN_IF_ERROR(Split(to_split, &children));
    std::vector<Segment> parents;
    std::vector<std::vector<Segment>> kids;
    for (size_t i = 0; i < to_split.size(); ++i) {
      if (children[i].empty()) {
        to_fetch.push_back(std::move(to_split[i]));
      } else {
        parents.push_back(std::move(to_split[i]));
        kids.push_back(std::move(children[i]));
      }
    }
    // Segments fetched in key order, so the report lists rows in key order.
    std::sort(to_fetch.begin(), to_fetch.end(),
              [](const Segment& a, const Segment& b) { return a.path < b.path; });
    LIFELINE_RETURN_IF_ERROR(Fetch(to_fetch));
    if (parents.empty()) {
      if (level == 1) {
        // The root could not be cut (a row or none per side): it was fetched whole.
        report->source_rows = root_rows_[0];
        report->target_rows = root_rows_[1];
        report->segments.push_back(SegmentSummary{"", "", root_rows_[0], root_rows_[1], 0});
      }
      break;
    }
    LIFELINE_RETURN_IF_ERROR(Checksum(parents, kids));
    report->levels = level;
    differing.clear();
    int64_t compared = 0;
    for (auto& group : kids) {
      for (auto& c : group) {
        ++compared;
        if (c.Differs()) differing.push_back(c);
      }
    }
    if (level == 1) {
      // The top level covers the whole key space once: its counts are the table's.
      // Consecutive top segments are grouped into at most `summaries_` for the chart.
      top_segments_ = static_cast<int64_t>(kids[0].size());
      summaries_ = std::min<int64_t>(summaries_, top_segments_);
      for (size_t i = 0; i < kids[0].size(); ++i) {
        const Segment& c = kids[0][i];
        report->source_rows += c.rows[0];
        report->target_rows += c.rows[1];
        const size_t g = SummaryOf(i);
        const bool first = report->segments.size() <= g;
        if (first) report->segments.emplace_back();
        SegmentSummary& summary = report->segments[g];
        if (kind_ == KeyKind::kData) {
          if (first && c.lo) summary.from_key = DisplayKey(*c.lo);
          summary.to_key = c.hi ? DisplayKey(*c.hi) : "";
        } else {
          if (first) summary.from_key = RenderOrdinal(kind_, c.lo_num);
          summary.to_key =
              i + 1 < kids[0].size() ? RenderOrdinal(kind_, kids[0][i + 1].lo_num) : "";
        }
        summary.source_rows += c.rows[0];
        summary.target_rows += c.rows[1];
      }
    }
    if (options_.progress)
      options_.progress(level, compared, static_cast<int64_t>(differing.size()));
    if (differing.empty()) break;
  }

  for (auto* list : {&missing_, &extra_, &different_}) {
    std::sort(list->begin(), list->end(), FoundBefore);
  }
  auto take = [&](std::vector<Found>& from, std::vector<RowDifference>* into) {
    for (auto& f : from) {
      const size_t top = f.path.empty() ? 0 : SummaryOf(static_cast<size_t>(f.path[0]));
      if (top < report->segments.size()) report->segments[top].differences++;
      into->push_back(std::move(f.row));
    }
  };
  take(missing_, &report->missing);
  take(extra_, &report->extra);
  take(different_, &report->different);
  return Status::Ok();
}

}  // namespace

Result<RowDiffReport> DiffRows(const RowDiffOptions& options) {
  const auto start = Clock::now();
  RowDiffReport report;
  report.table = options.table;
  RowDiff diff(options);
  Status st;
  try {
    st = diff.Run(&report);
  } catch (const std::exception& e) {
    st = Status::Internal("row diff of " + options.table + ": " + RedactPostgresMessage(e.what()));
  }
  if (!st.ok()) return st;
  report.rows_fetched = diff.rows_fetched();
  report.bytes_received = diff.bytes_received();
  report.notes = diff.notes();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace lifeline::gapcheck
