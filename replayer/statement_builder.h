// The transform step of the replayer: a ChangeEvent becomes SQL for the target. Values travel as
// PostgreSQL's text form in standard string literals, so every type the source printed is read
// back by the target's own input function (uuid, enum, jsonb, numeric, arrays, bytea, geography).
// The target session runs with standard_conforming_strings = on.
#pragma once

#include <string>
#include <string_view>

#include "common/postgres.h"
#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline::replayer {

// "schema"."table" of the event's relation.
std::string QualifiedTable(const v1::ChangeEvent& ev);

// The statement applying `ev`, ending in ';'. Empty for events that change no rows (heartbeat,
// marker). INSERT and SNAPSHOT are upserts on the key; UPDATE sets only the columns sent (never an
// unchanged-TOAST column) and finds the row by its old key when the key changed.
[[nodiscard]] Result<std::string> ApplyStatement(const v1::ChangeEvent& ev);

// INSERT ... ON CONFLICT DO NOTHING of a row image (for --only-missing).
[[nodiscard]] Result<std::string> InsertIfMissingStatement(const v1::ChangeEvent& ev,
                                                           const v1::Row& row);

// The key of the event's row as "col=value,..." text (for maps and reports).
std::string RowKeyText(const v1::ChangeEvent& ev);

}  // namespace lifeline::replayer
