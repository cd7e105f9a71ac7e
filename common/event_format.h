// Human and machine renderings of ChangeEvents and times, shared by `spool inspect`, replay
// --dry-run and gapcheck: one JSON object per event (JSON Lines) or one text line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "lifeline/v1/change_event.pb.h"

namespace lifeline {

// "insert", "update", "delete", "truncate", "snapshot", "heartbeat", "resnapshot".
std::string_view OpName(v1::Op op);
// Wall-clock now, microseconds since the Unix epoch (commit times use the same scale).
int64_t NowUnixMicros();
// RFC 3339 in UTC with microseconds: "2026-11-25T10:00:00.123456Z".
std::string FormatTimestampUs(int64_t unix_micros);
// Parses "2026-11-25T10:00:00.123456Z", "2026-11-25 10:00:00+01:00", "2026-11-25 10:00:00"
// (UTC) into microseconds since the epoch.
[[nodiscard]] Result<int64_t> ParseTimestampUs(const std::string& text);
// A JSON string literal, escaped.
std::string JsonQuote(std::string_view s);
// {"seq":..,"op":..,"schema":..,"table":..,"xid":..,"commit_lsn":"X/Y","commit_time":..,
//  "key":{..},"before":{..}|null,"after":{..}|null,"unchanged":[..]} and, for an event whose
//  rows are sealed (not opened), "sealed":"KEY_ID" with before, after and key null
std::string EventToJson(const v1::ChangeEvent& ev);
// {"col": "text" | null, ...} of a row image; unchanged-TOAST columns are left out.
std::string RowToJson(const v1::ChangeEvent& ev, const v1::Row& row);
// The Kafka record key of an event: the row's primary-key text (one key column) or a JSON object
// of key column to text (several), from `after` (`before` for a delete); a sealed event's clear
// `record_key`. nullopt for events without a key.
std::optional<std::string> RecordKeyText(const v1::ChangeEvent& ev);
// "seq=12 insert public.emergency_requests xid=731 lsn=0/1A2B3C time=... key=(id=...)"
std::string EventToText(const v1::ChangeEvent& ev);

}  // namespace lifeline
