-- The reference schema lifeline is built around: the roadside-assistance emergency_requests table
-- and its audit table, as in the disaster-recovery plan. Shared by tests, the demo and benchmarks.
-- Idempotent: safe to run on a database that already has it.
CREATE EXTENSION IF NOT EXISTS postgis;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'emergency_issue_type') THEN
    CREATE TYPE emergency_issue_type AS ENUM
      ('flat', 'puncture', 'blowout', 'valve', 'locking_nut', 'other');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'emergency_status') THEN
    CREATE TYPE emergency_status AS ENUM
      ('pending', 'assigned', 'en_route', 'completed', 'cancelled');
  END IF;
END
$$;

CREATE TABLE IF NOT EXISTS emergency_requests (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_name        text NOT NULL,
    phone_number         text NOT NULL,
    location_address     text,
    location_coordinates geography(Point, 4326),
    vehicle_make_model   text,
    tyre_issue           emergency_issue_type NOT NULL DEFAULT 'flat',
    status               emergency_status NOT NULL DEFAULT 'pending',
    technician_id        uuid,
    notes                jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz
);

CREATE INDEX IF NOT EXISTS emergency_requests_created_at_idx ON emergency_requests (created_at);

CREATE TABLE IF NOT EXISTS emergency_requests_audit (
    operation_type varchar(10),
    "timestamp"    timestamptz DEFAULT now(),
    user_id        uuid,
    table_name     varchar(50),
    record_id      uuid,
    old_values     jsonb,
    new_values     jsonb
);
