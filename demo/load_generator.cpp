// A paced libpqxx load of the emergency-request life cycle.
#include "demo/load_generator.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "common/postgres.h"

namespace lifeline {
namespace {

using Clock = std::chrono::steady_clock;

const char* const kIssues[] = {"flat", "puncture", "blowout", "valve", "locking_nut", "other"};
const char* const kVehicles[] = {"Ford Focus",   "VW Golf",      "Vauxhall Corsa", "Nissan Qashqai",
                                 "BMW 3 Series", "Toyota Yaris", "Kia Sportage"};
const char* const kStreets[] = {"High Street",   "Station Road", "Church Lane", "London Road",
                                "Victoria Road", "Green Lane",   "Manor Road"};

// A request in flight and the status it is in.
struct OpenRequest {
  std::string id;
  std::string status;
};

}  // namespace

Result<LoadReport> RunLoad(const LoadOptions& options, const std::atomic<bool>& stop,
                           std::atomic<uint64_t>* changes_committed) {
  if (options.rate <= 0) return Status::InvalidArgument("--rate must be positive");
  std::mt19937 rng(options.seed != 0 ? options.seed : std::random_device{}());
  std::ofstream ledger;
  if (!options.ledger_path.empty()) {
    ledger.open(options.ledger_path, std::ios::app);
    if (!ledger) {
      return Status::InvalidArgument("cannot write the ledger " + options.ledger_path);
    }
  }
  LoadReport report;
  std::deque<OpenRequest> open;
  std::unique_ptr<pqxx::connection> conn;
  const auto started = Clock::now();
  const auto interval = std::chrono::duration<double>(1.0 / options.rate);
  auto next_due = Clock::now();
  auto backoff = std::chrono::milliseconds(100);
  while (!stop.load()) {
    if (options.duration_ms > 0 &&
        Clock::now() - started >= std::chrono::milliseconds(options.duration_ms)) {
      break;
    }
    std::this_thread::sleep_until(next_due);
    if (!conn) {
      try {
        conn = std::make_unique<pqxx::connection>(
            ConnInfoWithPassword(options.target, options.password));
        backoff = std::chrono::milliseconds(100);
      } catch (const std::exception& e) {
        std::string msg = e.what();
        if (msg.find("password authentication failed") != std::string::npos ||
            msg.find("does not exist") != std::string::npos) {
          return Status::InvalidArgument("load: cannot connect to the target: " + msg);
        }
        ++report.errors;
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
        next_due = Clock::now();
        continue;
      }
    }
    // A busy day: new calls make up about 40% of changes; the rest move calls along.
    bool create = open.size() < 20 || rng() % 100 < 40;
    std::string created_id;
    size_t pick = 0;
    std::string next;
    try {
      pqxx::work tx(*conn);
      if (create) {
        auto r = tx.exec_params(
            "INSERT INTO emergency_requests (customer_name, phone_number, location_address, "
            "location_coordinates, vehicle_make_model, tyre_issue, notes) VALUES ($1, $2, $3, "
            "ST_SetSRID(ST_MakePoint($4, $5), 4326)::geography, $6, $7::emergency_issue_type, "
            "$8::jsonb) RETURNING id::text",
            "Customer " + std::to_string(rng() % 100000),
            "+44 7700 " + std::to_string(900000 + rng() % 99999),
            std::to_string(1 + rng() % 200) + " " + kStreets[rng() % 7] + ", London",
            -0.5 + (rng() % 10000) / 10000.0, 51.3 + (rng() % 4000) / 10000.0,
            std::string(kVehicles[rng() % 7]), std::string(kIssues[rng() % 6]),
            "{\"source\": \"app\", \"priority\": " + std::to_string(rng() % 3) + "}");
        created_id = r[0][0].as<std::string>();
      } else {
        pick = rng() % std::min<size_t>(open.size(), 50);
        const OpenRequest& req = open[pick];
        if (req.status == "pending") {
          next = (rng() % 100 < 8) ? "cancelled" : "assigned";
        } else if (req.status == "assigned") {
          next = (rng() % 100 < 4) ? "cancelled" : "en_route";
        } else {
          next = "completed";
        }
        tx.exec_params(
            "UPDATE emergency_requests SET status = $2::emergency_status, updated_at = now(), "
            "technician_id = CASE WHEN $2 = 'assigned' THEN gen_random_uuid() ELSE technician_id "
            "END, completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END "
            "WHERE id = $1::uuid",
            req.id, next);
      }
      tx.commit();
    } catch (const std::exception& e) {
      // A failed or in-doubt transaction is not in the ledger: only acknowledged commits are.
      ++report.errors;
      conn.reset();
      spdlog::warn("load: transaction failed ({}); reconnecting", e.what());
      next_due = Clock::now();
      continue;
    }
    if (create) {
      open.push_back({created_id, "pending"});
      ++report.requests_created;
      if (ledger) ledger << created_id << "\n" << std::flush;
      if (options.on_request_committed) options.on_request_committed(created_id);
    } else if (next == "completed" || next == "cancelled") {
      open.erase(open.begin() + static_cast<long>(pick));
    } else {
      open[pick].status = next;
    }
    report.changes += 1;
    ++report.transactions;
    if (changes_committed != nullptr) changes_committed->fetch_add(1);
    next_due += std::chrono::duration_cast<Clock::duration>(interval);
    // Behind by more than a second (a stall): do not burst to catch up.
    if (Clock::now() - next_due > std::chrono::seconds(1)) next_due = Clock::now();
  }
  return report;
}

}  // namespace lifeline
