// The check a record read from a spool or Kafka passes before it is replayed; apart from the
// sources so that it builds (and is fuzzed, fuzz/change_event_fuzz.cpp) without Kafka.
#include <climits>

#include "replayer/event_source.h"

namespace lifeline::replayer {

Status ParseRecord(std::string_view bytes, v1::ChangeEvent* event) {
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !event->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("the record is not a ChangeEvent (" + std::to_string(bytes.size()) +
                              " bytes)");
  }
  if (event->seq() == 0) return Status::Corruption("the record carries no seq");
  return Status::Ok();
}

}  // namespace lifeline::replayer
