// The RocksDB options a spool opens with. Apart from common/spool.h so that only what opens RocksDB
// itself sees RocksDB's headers: the spool, and spool_bench's plain-RocksDB side, which must
// differ from the spool only in what the spool adds.
#pragma once

#include <rocksdb/options.h>

namespace lifeline {

// Neither creates the database nor its column families; the caller sets that.
rocksdb::Options SpoolRocksOptions();

}  // namespace lifeline
