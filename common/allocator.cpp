// glibc malloc thresholds for a process that churns buffers of tens of KiB to a few MiB.
#include "common/allocator.h"

#include <malloc.h>

namespace lifeline {

void SetAllocatorThresholds() {
  // glibc raises both thresholds to the largest mmap-ed chunk freed so far. The spool reader's
  // readahead buffers and librdkafka's produce batches are made and freed many times a second;
  // under thresholds adapted to whichever was freed first, each cycle handed its pages back to
  // the kernel (munmap, or trimming the top of a heap) and faulted them in again: 40,000 page
  // faults per million events shipped, on both busy threads of the shipper. Fixed, buffers under
  // 4 MiB stay on the heap, and an arena keeps up to 16 MiB of free top before it trims.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

}  // namespace lifeline
