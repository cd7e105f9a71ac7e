// How the process's allocator keeps the large buffers that are made and freed many times a second.
#pragma once

namespace lifeline {

// Fixes glibc malloc's mmap threshold (4 MiB) and trim threshold (16 MiB) instead of letting it
// adapt them to the chunks freed so far. Called once by each program's main, before it starts
// threads.
void SetAllocatorThresholds();

}  // namespace lifeline
