#!/usr/bin/env python3
# Writes the seed inputs of fuzz/corpus/<target>/ from the project's own samples: pgoutput
# messages captured from PostgreSQL 15 (tests/capture/testdata), ChangeEvents shaped like
# tests/support/sample_events.h (encoded by protoc), and YAML configs like the documented ones.
# Run from anywhere: python3 fuzz/seeds.py. Inputs the fuzzer found that are kept go beside these
# under other names (crash-*, regress-*), so rerunning this never removes them.
import os
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- pgoutput_decoder_fuzz: messages behind 2-byte big-endian lengths -----------------------------


def frame(messages):
    return b"".join(struct.pack(">H", len(m)) + m for m in messages)


def shrink_insert(msg, limit=64):
    """The captured Insert carries a 15,000-byte TOAST value; the seeds keep every value short."""
    out = bytearray(msg[:8])  # 'I', oid, 'N', column count
    i = 8
    for _ in range(struct.unpack(">h", msg[6:8])[0]):
        kind = msg[i : i + 1]
        out += kind
        i += 1
        if kind == b"t":
            (n,) = struct.unpack(">i", msg[i : i + 4])
            value = msg[i + 4 : i + 4 + n][:limit]
            out += struct.pack(">i", len(value)) + value
            i += 4 + n
    return bytes(out)


def pgoutput_seeds():
    lines = []
    with open(os.path.join(ROOT, "tests/capture/testdata/pgoutput_pg15.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            _, xid, hexdata = line.split()
            msg = bytes.fromhex(hexdata)
            if msg[:1] == b"I":
                msg = shrink_insert(msg)
            lines.append((int(xid), msg))
    # Per transaction, after the Type and Relation messages decoded before it (the server sends a
    # Relation once per session, so a row alone would only reach "relation unknown").
    defs, seen = {}, []
    for xid in dict.fromkeys(x for x, _ in lines):
        msgs = [m for x, m in lines if x == xid]
        write("pgoutput_decoder_fuzz", f"xid-{xid}", frame(list(defs.values()) + msgs))
        for m in msgs:
            if m[:1] in (b"R", b"Y"):
                defs[(m[:1], m[1:5])] = m
        seen += msgs
    write("pgoutput_decoder_fuzz", "whole-stream", frame(seen))
    # The same transaction as capture receives it: in XLogData frames, with a keepalive between.
    wal, send_time = 0x15479F8, 817_000_000_000_000

    def xlog(m):
        return b"w" + struct.pack(">QQq", wal, wal + 0x100, send_time) + m

    keepalive = b"k" + struct.pack(">Qq", wal, send_time) + b"\x01"
    first = [m for x, m in lines if x == 731]
    write("pgoutput_decoder_fuzz", "xlogdata-xid-731",
          frame([xlog(first[0]), keepalive] + [xlog(m) for m in first[1:]]))
    status = b"r" + struct.pack(">QQQq", wal, wal, wal, send_time) + b"\x00"
    write("pgoutput_decoder_fuzz", "standby-status-update", frame([status]))


# --- change_event_fuzz: one serialized lifeline.v1.ChangeEvent --------------------------------------

SOURCE = ('source { system_id: "7312345678901234567" timeline: 1 database: "app" '
          'slot_name: "lifeline" }')
RELATION = ('relation { schema: "public" table: "emergency_requests" relation_oid: 16400 '
            'schema_version: 1 '
            'columns { name: "id" type_oid: 2950 type_name: "uuid" key: true } '
            'columns { name: "customer_name" type_oid: 25 type_name: "text" } '
            'columns { name: "phone_number" type_oid: 25 type_name: "text" } '
            'columns { name: "notes" type_oid: 3802 type_name: "jsonb" } }')
ZERO_HASH = 'prev_hash: "' + "\\000" * 32 + '"'
HASH = 'prev_hash: "' + "\\252" * 32 + '"'


def row(*values):
    parts = []
    for v in values:
        if v is None:
            parts.append("values { null: true }")
        elif v is Ellipsis:
            parts.append("values { unchanged_toast: true }")
        else:
            parts.append('values { text: "%s" }' % v)
    return "{ " + " ".join(parts) + " }"


def event(seq, op, body, xid=731, last=True, head=HASH):
    return (f"seq: {seq} {SOURCE} commit_lsn: {0x1000000 + xid * 0x1000} "
            f"event_lsn: {0x1000000 + xid * 0x1000 - 0x800} xid: {xid} "
            f"commit_time_us: {1_764_000_000_000_000 + xid * 1000} index_in_txn: 0 "
            f"txn_event_count: 1 last_in_txn: {'true' if last else 'false'} op: {op} {head} {body}")


def change_event_seeds():
    row1 = row("00000000-0000-4000-8000-0000000002db", "Customer 731", "+44 7700 9000",
               '{\\"pad\\":\\"xx\\"}')
    events = {
        "insert-first": event(1, "OP_INSERT", f"{RELATION} after {row1}", head=ZERO_HASH),
        "insert": event(2, "OP_INSERT", f"{RELATION} after {row1}"),
        "snapshot": event(3, "OP_SNAPSHOT", f"{RELATION} after {row1}", xid=0),
        "update-unchanged-toast": event(
            4, "OP_UPDATE",
            f"{RELATION} after " + row("00000000-0000-4000-8000-0000000002db", "Customer 731",
                                       "+44 7700 9001", ...)),
        "update-key-change": event(
            5, "OP_UPDATE",
            f"{RELATION} before " + row("00000000-0000-4000-8000-0000000002db", None, None, None) +
            " after " + row("00000000-0000-4000-8000-0000000002dc", "Customer 731", None, None)),
        "delete": event(
            6, "OP_DELETE",
            f"{RELATION} before " + row("00000000-0000-4000-8000-0000000002dc", None, None, None)),
        "truncate": event(7, "OP_TRUNCATE", f"{RELATION} truncate_options: 3"),
        "heartbeat": event(8, "OP_HEARTBEAT", 'message: "lifeline.heartbeat"', xid=739),
        "resnapshot-marker": event(9, "OP_RESNAPSHOT_MARKER", f"{RELATION}", last=False),
        "mid-transaction": event(10, "OP_INSERT", f"{RELATION} after {row1}", last=False),
        # Sealed under the target's key id "fuzz" but not by that key: refused as altered.
        "sealed-altered": event(
            11, "OP_INSERT",
            RELATION + ' sealed { key_id: "fuzz" nonce: "' + "\\001" * 12 + '" ciphertext: "' +
            "\\377" * 40 + '" record_key: "00000000-0000-4000-8000-0000000002db" }'),
    }
    proto_dir = os.path.join(ROOT, "proto")
    for name, text in events.items():
        data = subprocess.run(
            ["protoc", "-I", proto_dir, "--encode=lifeline.v1.ChangeEvent",
             "lifeline/v1/change_event.proto"],
            input=text.encode(), capture_output=True, check=True).stdout
        write("change_event_fuzz", name, data)


# --- config_fuzz: YAML configs and the value texts of durations, LSNs and timestamps ------------


def config_seeds():
    write("config_fuzz", "capture.yaml",
          'source: "host=db1 dbname=app user=lifeline"\n'
          "spool: /var/lib/lifeline/spool\n"
          "table: [public.emergency_requests, public.t2]\n"
          "heartbeat-interval: 10s\n"
          "batch-size: 500\n")
    write("config_fuzz", "ship.yaml",
          "spool: /var/lib/lifeline/spool\n"
          "kafka-property:\n"
          "  security.protocol: SASL_SSL\n"
          "  sasl.mechanisms: SCRAM-SHA-512\n"
          "  acks: all\n"
          "max_bytes: 1048576\n"
          "follow: true\n"
          "ratio: 0.5\n")
    write("config_fuzz", "empty-values.yaml", "source:\ntable: []\nkafka-property: {}\n")
    for name, text in [("duration-ms", "500ms"), ("duration-fraction", "1.5h"),
                       ("duration-days", "7d"), ("lsn", "16/B374D848"), ("lsn-low", "0/16B3748"),
                       ("time-rfc3339", "2026-11-25T10:00:00.123456Z"),
                       ("time-offset", "2026-11-25 10:00:00+01:00"),
                       ("time-plain", "2026-11-25 10:00:00")]:
        write("config_fuzz", name, text)


if __name__ == "__main__":
    pgoutput_seeds()
    change_event_seeds()
    config_seeds()
    for target in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, target))
        size = sum(os.path.getsize(os.path.join(CORPUS, target, f)) for f in files)
        print(f"{target}: {len(files)} inputs, {size} bytes", file=sys.stderr)
