-- The database renders the canonical JSON of accounts and entries, once per object, as `json`
-- in the field order the API documents (`id` first; jsonb would reorder keys by length), so the
-- stored idempotent response, the outbox event and the read API never disagree on a shape.

-- STABLE, as to_char is: a function declared less volatile than its body is never inlined, and
-- this one is called several times per engine call.
CREATE OR REPLACE FUNCTION arus_timestamp(p_at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- An account's holds: `pending_debits` and `pending_credits` count the active ones, so the
-- materialized totals less the holds already past their expires_at (the sweep deletes those
-- later); `available_balance` is the balance less the active holds on the side that lowers it;
-- `version` counts the posted postings applied to it (SPEC §3.5).
CREATE OR REPLACE FUNCTION arus_account_json(p_account_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', a.id, 'code', a.code, 'name', a.name, 'type', a.type,
        'currency', a.currency, 'allow_negative', a.allow_negative, 'metadata', a.metadata,
        'balance', b.balance,
        'pending_debits', b.pending_debits - x.debits,
        'pending_credits', b.pending_credits - x.credits,
        'available_balance', b.balance - CASE b.normal_side
            WHEN 'debit' THEN b.pending_credits - x.credits
            ELSE b.pending_debits - x.debits END,
        'version', b.posting_count,
        'created_at', arus_timestamp(a.created_at))
    FROM accounts a JOIN balances b ON b.account_id = a.id
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(h.amount) FILTER (WHERE h.direction = 'debit'), 0) AS debits,
               coalesce(sum(h.amount) FILTER (WHERE h.direction = 'credit'), 0) AS credits
        FROM holds h
        WHERE h.account_id = a.id AND h.expires_at <= clock_timestamp()
    ) x
    WHERE a.id = p_account_id
$$;

-- An entry's status: `posted` for an entry written posted; a pending entry reads its outcome
-- (posted, voided, expired), or `expired` from its expires_at on, or `pending`.
CREATE OR REPLACE FUNCTION arus_entry_json(p_entry_id uuid) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', e.id, 'ledger_seq', e.ledger_seq,
        'status', CASE WHEN NOT e.pending THEN 'posted'
                       WHEN o.outcome IS NOT NULL THEN o.outcome
                       WHEN e.expires_at <= clock_timestamp() THEN 'expired'
                       ELSE 'pending' END,
        'description', e.description,
        'effective_date', to_char(e.effective_date, 'YYYY-MM-DD'), 'metadata', e.metadata,
        'postings', CASE WHEN e.pending THEN (
            SELECT json_agg(json_build_object(
                       'account_id', p.account_id, 'account_code', a.code,
                       'direction', p.direction, 'amount', p.amount, 'currency', p.currency,
                       'account_version', NULL)
                   ORDER BY p.position)
            FROM pending_postings p JOIN accounts a ON a.id = p.account_id
            WHERE p.entry_id = e.id) ELSE (
            SELECT json_agg(json_build_object(
                       'account_id', p.account_id, 'account_code', a.code,
                       'direction', p.direction, 'amount', p.amount, 'currency', p.currency,
                       'account_version', p.account_version)
                   ORDER BY p.position)
            FROM postings p JOIN accounts a ON a.id = p.account_id
            WHERE p.entry_id = e.id) END,
        'reverses', e.reverses,
        'reversed_by', (SELECT r.id FROM entries r WHERE r.reverses = e.id),
        'posts', e.posts,
        'posted_by', (SELECT r.id FROM entries r WHERE r.posts = e.id),
        'expires_at', arus_timestamp(e.expires_at),
        'created_at', arus_timestamp(e.created_at))
    FROM entries e
    LEFT JOIN pending_outcomes o ON o.entry_id = e.id
    WHERE e.id = p_entry_id
$$;
