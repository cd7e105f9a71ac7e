// Synthetic ChangeEvents of the reference table for spool tests and benchmarks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lifeline/v1/change_event.pb.h"

namespace lifeline::testing {

// Event `index` of `count` in transaction `xid`, an INSERT into public.emergency_requests whose
// serialized size is close to `approx_bytes`. Commit LSN and time derive from xid.
v1::ChangeEvent SampleEvent(uint32_t xid, uint32_t index, uint32_t count,
                            size_t approx_bytes = 400);

// All events of one transaction.
std::vector<v1::ChangeEvent> SampleTransaction(uint32_t xid, uint32_t count,
                                               size_t approx_bytes = 400);

}  // namespace lifeline::testing
