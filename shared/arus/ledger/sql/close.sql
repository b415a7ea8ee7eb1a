-- The daily close (SPEC §3.3), computed here from the journal: the caller names a ledger and a
-- day and passes nothing it could forge. Run by the close's role (migration 0006).

-- One account's line of a close's snapshot. A type, not a table: created here when missing so
-- that this file applies to a database of any age, like the functions it defines.
DO $$ BEGIN
    IF to_regtype('public.arus_close_line') IS NULL THEN
        CREATE TYPE public.arus_close_line AS (
            account_id uuid, code text, currency text, normal_side text, balance bigint,
            postings_sum numeric);
    END IF;
END $$;

-- The books at the end of p_day (SPEC §3.3): every account with postings of entries dated on
-- or before it, whenever they were posted. Two readings of each balance from the journal,
-- which agree unless a row drifted: the sum of those postings (postings_sum), and the running
-- balance stored on the account's last posting less the postings dated after the day
-- (balance). The materialized balances are checked apart (arus_current_drift).
CREATE OR REPLACE FUNCTION arus_close_snapshot(p_ledger uuid, p_day date)
RETURNS SETOF arus_close_line LANGUAGE sql STABLE AS $$
    WITH signed AS (
        SELECT p.account_id, e.effective_date <= p_day AS dated,
               CASE WHEN p.direction = b.normal_side THEN p.amount::numeric
                    ELSE -p.amount::numeric END AS amount
        FROM entries e
        JOIN postings p ON p.entry_id = e.id
        JOIN balances b ON b.account_id = p.account_id
        WHERE e.ledger_id = p_ledger AND NOT e.pending
    ), sums AS (
        SELECT account_id, sum(amount) FILTER (WHERE dated) AS through_day,
               coalesce(sum(amount) FILTER (WHERE NOT dated), 0) AS after_day
        FROM signed GROUP BY account_id
    )
    SELECT a.id, a.code, a.currency, b.normal_side,
           ((SELECT p.balance_after FROM postings p WHERE p.account_id = s.account_id
             ORDER BY p.created_at DESC, p.id DESC LIMIT 1) - s.after_day)::bigint,
           s.through_day
    FROM sums s
    JOIN accounts a ON a.id = s.account_id
    JOIN balances b ON b.account_id = s.account_id
    WHERE s.through_day IS NOT NULL
$$;

-- The sealed journal (SPEC §3.5, docs/seal.md). A seal is SHA-256 folded over the journal's
-- units in order, starting from the previous close's seal (32 zero bytes for the first):
-- seal := sha256(seal || utf8(unit)). The units of a close are, first, each entry with
-- ledger_seq in (p_after_seq, p_through_seq], in ledger_seq order, with its postings and
-- pending lines; then each pending outcome resolved in (p_after, p_through], in (resolved_at,
-- entry_id) order. A unit is records of fields: a field is `~,` for NULL, else its UTF-8 byte
-- length, `:`, the value and `,`; a record ends with a newline.
CREATE OR REPLACE FUNCTION arus_seal_field(p_value text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(octet_length(p_value) || ':' || p_value || ',', '~,')
$$;

CREATE OR REPLACE FUNCTION arus_seal_instant(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE OR REPLACE FUNCTION arus_journal_units(
    p_ledger uuid, p_after_seq bigint, p_through_seq bigint, p_after timestamptz,
    p_through timestamptz
) RETURNS TABLE (unit text) LANGUAGE sql STABLE AS $$
    SELECT u.unit FROM (
        SELECT 0 AS part, e.ledger_seq AS seq, NULL::timestamptz AS at, NULL::uuid AS id,
               concat('entry,', arus_seal_field(e.ledger_seq::text),
                   arus_seal_field(e.id::text), arus_seal_field(e.effective_date::text),
                   arus_seal_field(arus_seal_instant(e.created_at)),
                   arus_seal_field(e.pending::text), arus_seal_field(e.posts::text),
                   arus_seal_field(e.reverses::text),
                   arus_seal_field(arus_seal_instant(e.expires_at)),
                   arus_seal_field(e.idempotency_key), arus_seal_field(e.description),
                   arus_seal_field(e.metadata::text), E'\n',
                   (SELECT string_agg(concat('posting,', arus_seal_field(p.position::text),
                               arus_seal_field(p.account_id::text), arus_seal_field(p.direction),
                               arus_seal_field(p.amount::text), arus_seal_field(p.currency),
                               arus_seal_field(p.balance_after::text), E'\n'), ''
                               ORDER BY p.position)
                    FROM postings p WHERE p.entry_id = e.id),
                   (SELECT string_agg(concat('pending,', arus_seal_field(q.position::text),
                               arus_seal_field(q.account_id::text), arus_seal_field(q.direction),
                               arus_seal_field(q.amount::text), arus_seal_field(q.currency),
                               E'\n'), '' ORDER BY q.position)
                    FROM pending_postings q WHERE q.entry_id = e.id)) AS unit
        FROM entries e
        WHERE e.ledger_id = p_ledger AND e.ledger_seq > p_after_seq
          AND e.ledger_seq <= p_through_seq
        UNION ALL
        SELECT 1, NULL, o.resolved_at, o.entry_id,
               concat('outcome,', arus_seal_field(o.entry_id::text),
                         arus_seal_field(o.outcome),
                         arus_seal_field(arus_seal_instant(o.resolved_at)), E'\n')
        FROM pending_outcomes o
        WHERE o.ledger_id = p_ledger AND o.resolved_at > p_after AND o.resolved_at <= p_through
    ) u
    ORDER BY u.part, u.seq, u.at, u.id
$$;

CREATE OR REPLACE FUNCTION arus_journal_seal(
    p_ledger uuid, p_previous text, p_after_seq bigint, p_through_seq bigint,
    p_after timestamptz, p_through timestamptz
) RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_seal bytea := coalesce(decode(p_previous, 'hex'), decode(repeat('00', 32), 'hex'));
    v_unit text;
BEGIN
    FOR v_unit IN
        SELECT u.unit FROM arus_journal_units(p_ledger, p_after_seq, p_through_seq, p_after,
                                              p_through) u
    LOOP
        v_seal := sha256(v_seal || convert_to(v_unit, 'UTF8'));
    END LOOP;
    RETURN encode(v_seal, 'hex');
END $$;

-- Accounts whose materialized balance differs from the sum of their postings, now.
CREATE OR REPLACE FUNCTION arus_current_drift(p_ledger uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'account_id', a.id, 'account_code', a.code, 'currency', a.currency,
               'materialized_balance', b.balance, 'postings_balance', s.total)
               ORDER BY a.currency, a.code), '[]')
    FROM accounts a
    JOIN balances b ON b.account_id = a.id
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(CASE WHEN p.direction = b.normal_side
                                 THEN p.amount::numeric ELSE -p.amount::numeric END), 0) AS total
        FROM postings p WHERE p.ledger_id = p_ledger AND p.account_id = a.id
    ) s
    WHERE a.ledger_id = p_ledger AND s.total <> b.balance
$$;

-- Closes (p_ledger, p_day): refuses a day before the ledger existed, a day not yet over and a
-- day before the ledger's last close. Holds the ledger's close lock exclusively, so no
-- back-dated entry, post, void or expiry is judged or written while it runs, and concurrent
-- closes queue; a closed day returns its stored report. A clean close stores its report, its
-- snapshot, its seal and a `ledger.closed` event; one with drift or imbalance stores nothing
-- and returns its report.
--
-- No entry dated on or before the day is missed, however long its call ran: a call that did
-- not take the close lock (dated today or later when it started) is refused by the engine if
-- it takes the ledger row on a later day (arus_write_entries, step 4), and the close first
-- waits for the ledger row's current holder, so every entry it does not see was sequenced
-- after midnight by a call that took the close lock, and waits for this one. The wait takes
-- the row in a subtransaction that ends at once: the close never holds writers back.
CREATE OR REPLACE FUNCTION arus_close_day(p_ledger uuid, p_day date) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_cutoff constant timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    v_created date;
    v_previous record;
    v_last_seq bigint;
    v_sealed_at timestamptz;
    v_lines arus_close_line[];
    v_report jsonb;
BEGIN
    PERFORM arus_require_read_committed();
    IF p_day IS NULL OR NOT isfinite(p_day) THEN
        RAISE EXCEPTION 'a close needs a day' USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    SELECT (created_at AT TIME ZONE 'UTC')::date INTO v_created FROM ledgers WHERE id = p_ledger;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ledger %', p_ledger USING ERRCODE = 'P0001', HINT = 'not_found';
    END IF;
    IF p_day < v_created THEN
        RAISE EXCEPTION '% is before the ledger existed (created %)', p_day, v_created
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    IF clock_timestamp() < v_cutoff THEN
        RAISE EXCEPTION '% can be closed from %', p_day, arus_timestamp(v_cutoff)
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    PERFORM arus_close_lock(p_ledger, true);
    BEGIN
        PERFORM 1 FROM ledgers WHERE id = p_ledger FOR SHARE;
        RAISE EXCEPTION 'waited' USING ERRCODE = 'AR001';
    EXCEPTION WHEN SQLSTATE 'AR001' THEN
        NULL;  -- the subtransaction ended with its row lock: the wait was the point
    END;
    SELECT report INTO v_report FROM daily_closes WHERE ledger_id = p_ledger AND close_date = p_day;
    IF FOUND THEN
        RETURN v_report;
    END IF;
    SELECT close_date, last_ledger_seq, seal, closed_at INTO v_previous
    FROM daily_closes WHERE ledger_id = p_ledger ORDER BY close_date DESC LIMIT 1;
    IF v_previous.close_date > p_day THEN
        RAISE EXCEPTION 'the ledger is closed through %: % can no longer be closed',
            v_previous.close_date, p_day USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    -- Every entry up to the ledger's last sequence number has committed: the row is held from
    -- the sequence step to commit, and we waited for its holder.
    SELECT last_ledger_seq, clock_timestamp() INTO v_last_seq, v_sealed_at
    FROM ledgers WHERE id = p_ledger;

    -- One read of the journal: the report and the stored snapshot are the same rows.
    v_lines := ARRAY(SELECT s FROM arus_close_snapshot(p_ledger, p_day) s);
    WITH snapshot AS (
        SELECT s.*, CASE s.normal_side WHEN 'debit' THEN s.balance ELSE -s.balance END AS signed
        FROM unnest(v_lines) s
    ), totals AS (
        SELECT currency, sum(greatest(signed, 0)) AS debit, sum(greatest(-signed, 0)) AS credit
        FROM snapshot GROUP BY currency
    ), drift AS (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'account_id', account_id, 'account_code', code,
                   'snapshot_balance', balance, 'postings_balance', postings_sum)
                   ORDER BY code), '[]') AS found
        FROM snapshot WHERE postings_sum <> balance
    )
    SELECT jsonb_build_object(
               'ledger_id', p_ledger, 'date', p_day,
               'accounts', (SELECT count(*) FROM snapshot),
               'last_ledger_seq', v_last_seq,
               'totals', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                     'currency', currency, 'debit', debit, 'credit', credit)
                                     ORDER BY currency), '[]') FROM totals),
               'balanced', (SELECT coalesce(bool_and(debit = credit), true) FROM totals),
               'drift', drift.found || arus_current_drift(p_ledger))
    INTO v_report FROM drift;
    v_report := v_report || jsonb_build_object(
        'ok', (v_report ->> 'balanced')::boolean AND v_report -> 'drift' = '[]'::jsonb);
    IF NOT (v_report ->> 'ok')::boolean THEN
        RETURN v_report;
    END IF;

    v_report := v_report || jsonb_build_object(
        'seal', arus_journal_seal(p_ledger, v_previous.seal, coalesce(v_previous.last_ledger_seq, 0),
                                  v_last_seq, coalesce(v_previous.closed_at, '-infinity'),
                                  v_sealed_at),
        'closed_at', arus_timestamp(v_sealed_at));
    INSERT INTO daily_closes (ledger_id, close_date, report, closed_at, last_ledger_seq, seal)
    VALUES (p_ledger, p_day, v_report, v_sealed_at, v_last_seq, v_report ->> 'seal');
    INSERT INTO balance_snapshots (ledger_id, close_date, account_id, currency, balance)
    SELECT p_ledger, p_day, s.account_id, s.currency, s.balance
    FROM unnest(v_lines) s;
    PERFORM arus_enqueue_event(p_ledger, 'ledger.closed', NULL, clock_timestamp(),
                               v_report::json);
    RETURN v_report;
END $$;
