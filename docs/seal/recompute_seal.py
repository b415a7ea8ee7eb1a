"""Recompute a ledger's seals from its journal, independently of Arus (docs/seal.md).

python docs/seal/recompute_seal.py --unix-sock /path/.s.PGSQL.5432 --user U --database D LEDGER_ID
"""

import argparse
import hashlib

import pg8000.native

TS = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
ENTRIES = f"""SELECT ledger_seq::text, id::text, effective_date::text, {TS.format("created_at")},
    pending::text, posts::text, reverses::text, {TS.format("expires_at")}, idempotency_key,
    description, metadata::text FROM entries WHERE ledger_id = :l AND ledger_seq > :a
    AND ledger_seq <= :b ORDER BY ledger_seq"""
LINES = """SELECT position::text, account_id::text, direction, amount::text, currency{}
    FROM {} WHERE entry_id = CAST(:e AS uuid) ORDER BY position"""
OUTCOMES = f"""SELECT entry_id::text, outcome, {TS.format("resolved_at")} FROM pending_outcomes
    WHERE ledger_id = :l AND resolved_at > :a AND resolved_at <= :b
    ORDER BY resolved_at, entry_id"""
CLOSES = """SELECT close_date::text, last_ledger_seq, closed_at, seal FROM daily_closes
    WHERE ledger_id = :l ORDER BY close_date"""


def record(kind, fields):  # a field: `~,` for NULL, else its UTF-8 length, `:`, value, `,`
    return (
        kind
        + ","
        + "".join("~," if f is None else f"{len(f.encode())}:{f}," for f in fields)
        + "\n"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ledger"), parser.add_argument("--unix-sock"), parser.add_argument("--host")
    parser.add_argument("--user", default="postgres"), parser.add_argument("--database")
    args = parser.parse_args()
    db = pg8000.native.Connection(
        args.user, unix_sock=args.unix_sock, host=args.host, database=args.database
    )
    seal, last_seq, last_at = bytes(32), 0, "-infinity"
    for day, through_seq, closed_at, stored in db.run(CLOSES, l=args.ledger):
        units = []
        for e in db.run(ENTRIES, l=args.ledger, a=last_seq, b=through_seq):
            units.append(
                record("entry", e)
                + "".join(
                    record("posting", p)
                    for p in db.run(LINES.format(", balance_after::text", "postings"), e=e[1])
                )
                + "".join(
                    record("pending", p)
                    for p in db.run(LINES.format("", "pending_postings"), e=e[1])
                )
            )
        units += [
            record("outcome", o) for o in db.run(OUTCOMES, l=args.ledger, a=last_at, b=closed_at)
        ]
        for unit in units:
            seal = hashlib.sha256(seal + unit.encode()).digest()
        print(day, "ok" if seal.hex() == stored else "MISMATCH", seal.hex())
        seal, last_seq, last_at = bytes.fromhex(stored), through_seq, closed_at


if __name__ == "__main__":
    main()
