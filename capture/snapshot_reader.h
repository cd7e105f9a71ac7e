// The initial snapshot: reads the captured tables inside the slot's exported snapshot and spools
// their rows as SNAPSHOT events. All of them form one spool transaction whose commit LSN is the
// slot's consistent point, so a snapshot cut short by a crash is discarded whole on reopen and
// started over; none of it is ever served half-done.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "capture/source_catalog.h"
#include "common/event_seal.h"
#include "common/lsn.h"
#include "common/metrics.h"
#include "common/spool.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::capture {

struct SnapshotRequest {
  std::string conninfo;
  std::string password;
  std::string snapshot_name;
  Lsn consistent_point;
  std::vector<TableName> tables;
  v1::Source source;
  size_t batch_events = 2000;
  // Spool properties written atomically with the snapshot's last event (the "done" marker).
  std::vector<std::pair<std::string, std::string>> done_properties;
  // Seals each row before it is spooled; null or empty: rows stay in clear.
  const Keyring* keyring = nullptr;
};

// How far the snapshot has got, for /metrics.
struct SnapshotProgress {
  Counter* rows_read = nullptr;     // rows read from the source
  Counter* rows_spooled = nullptr;  // rows synced into the spool (visible once the last one is)
  Gauge* rows_estimated = nullptr;  // the tables' row estimates (pg_class.reltuples), summed
};

// Returns the number of rows read. Stops early (returning Unavailable) when `stop` becomes true.
[[nodiscard]] Result<uint64_t> ReadSnapshot(const SnapshotRequest& request, SourceCatalog& catalog,
                                            Spool& spool, const SnapshotProgress& progress,
                                            const std::atomic<bool>& stop);

}  // namespace lifeline::capture
